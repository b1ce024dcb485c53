"""Judge throughput: logprob option scoring vs generating a verdict as text and parsing it.

Same pairs (a seeded HH-RLHF harmless-base sample), same judge prompts, same model and engine, one
run. Both methods ask every (pair, principle) in both orders. The text method generates up to
`--verdict-tokens` greedy tokens after "The better response is" and parses the first A/B; rows it
cannot parse are counted.

    python benchmarks/bench_judge.py [--pairs 64] [--principles 2] [--verdict-tokens 24] [--write-md]
"""

from __future__ import annotations

import os

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import datetime
import json
import platform
import re
import time
from pathlib import Path

from engine.backends import GenerationRequest, Sampling, load_backend
from engine.config import JudgeConfig
from engine.constitution import load_constitution
from engine.judges import sample_principles
from engine.judges.pairwise import collect_votes
from engine.judges.prompt import ANSWER_PREFIX, judge_messages, judge_template, render_conversation
from engine.models import resolve_model
from engine.preferences import load_preferences

REPO = Path(__file__).resolve().parents[1]
HH = REPO.parent / "shared" / "data" / "hh-rlhf" / "harmless-base-test.jsonl.gz"
VERDICT = re.compile(r"\b([AB])\b")


def text_verdict_requests(pairs, backend, cfg, constitution, seed, max_tokens):
    """The parse-the-text baseline: the same judge prompts, with the answer prefix as an instruction."""
    template = judge_template(constitution.judge, backend)
    sampling = Sampling(temperature=0.0, top_p=1.0, max_tokens=max_tokens)
    requests = []
    for pair_id, prompt, a, b, conv in pairs.select("pair_id", "prompt", "response_a", "response_b", "conversation").iter_rows():
        conversation = render_conversation(prompt, conv)
        for principle in sample_principles(constitution, cfg.principles, pair_id, seed):
            for first, second in ((a, b), (b, a)):
                messages = judge_messages(template, conversation, principle.comparison, first, second, False)
                hint = f'\nReply in the form "{ANSWER_PREFIX} A" or "{ANSWER_PREFIX} B".'
                messages = (*messages[:-1], {"role": "user", "content": messages[-1]["content"] + hint})
                requests.append(GenerationRequest(messages, sampling, seed))
    return requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--principles", type=int, default=2)
    parser.add_argument("--verdict-tokens", type=int, default=24)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=1, help="repeat both methods, keep the faster of each")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "judge.json"))
    parser.add_argument("--write-md", action="store_true")
    args = parser.parse_args()

    backend = load_backend("vllm", str(resolve_model(args.model)), {"max_model_len": 4096, "kv_cache_gib": 2})
    constitution = load_constitution()
    cfg = JudgeConfig(principles=args.principles)
    pairs = load_preferences(HH, limit=args.pairs, seed=args.seed).pairs
    backend.generate([GenerationRequest(({"role": "user", "content": "hi"},), Sampling(0.0, 1.0, 2), 0)])  # warm-up

    results = {}
    for _ in range(args.rounds):  # alternate the methods, keep the faster of each
        backend.llm.reset_prefix_cache()
        start = time.perf_counter()
        votes = collect_votes(pairs, backend, cfg, constitution, args.seed)
        logprob_s = time.perf_counter() - start

        requests = text_verdict_requests(pairs, backend, cfg, constitution, args.seed, args.verdict_tokens)
        backend.llm.reset_prefix_cache()
        start = time.perf_counter()
        completions = backend.generate(requests)
        text_s = time.perf_counter() - start
        parsed = [VERDICT.search(c.text) for c in completions]
        results["logprob_seconds"] = min(results.get("logprob_seconds", 1e9), logprob_s)
        results["text_seconds"] = min(results.get("text_seconds", 1e9), text_s)
    n = pairs.height
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU",
        "model": args.model,
        "pairs": n,
        "principles_per_pair": args.principles,
        "votes": votes.height,
        "verdict_tokens": args.verdict_tokens,
        "logprob_pairs_per_s": n / results["logprob_seconds"],
        "text_pairs_per_s": n / results["text_seconds"],
        "speedup": results["text_seconds"] / results["logprob_seconds"],
        "logprob_unscored_votes": int(votes["p_first"].is_null().sum()),
        "text_unparsed_votes": sum(p is None for p in parsed),
        "text_mean_generated_tokens": sum(c.completion_tokens for c in completions) / len(completions),
        **results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    if args.write_md:
        with open(REPO / "benchmarks" / "RESULTS.md", "a") as f:
            f.write(render_markdown(report))
    backend.close()


def render_markdown(r: dict) -> str:
    return (
        f"\n## Judge: logprob scoring vs text verdicts ({r['date']}, {r['machine']})\n\n"
        f"{r['pairs']} HH-RLHF harmless-base pairs (seeded sample), {r['principles_per_pair']} principles x 2 orders "
        f"= {r['votes']} votes, {r['model']} on vLLM (vllm-cpu), same prompts for both methods.\n\n"
        "| method | seconds | judged pairs/s | unusable votes |\n|---|---:|---:|---:|\n"
        f"| logprob option scoring (1 token) | {r['logprob_seconds']:.1f} | {r['logprob_pairs_per_s']:.2f} | {r['logprob_unscored_votes']} |\n"
        f"| text verdict, up to {r['verdict_tokens']} tokens, parsed | {r['text_seconds']:.1f} | {r['text_pairs_per_s']:.2f} | "
        f"{r['text_unparsed_votes']} unparsed |\n\n"
        f"Speed-up: **{r['speedup']:.1f}x** (goal >= 5x). Text verdicts averaged {r['text_mean_generated_tokens']:.1f} generated tokens.\n"
    )


if __name__ == "__main__":
    main()
