"""The respond stage on the same prompts: the local executor against the Ray executor with 1 and 2 replicas.

For each executor: wall seconds of the stage, seconds to its first finished chunk, the steady rate
(rows/s from the first finished chunk to the last) and the overhead (wall - rows / steady rate: engine
loading, and for Ray the actors' start and their imports). Ray's cluster start is timed apart. The same
transformers backend, greedy decoding, one shard per chunk; every executor's rows are checked equal.
Ray gives each CPU actor one torch thread, so the local executor is also timed with one thread
("local-1-thread"): that is the fair per-replica rate.

    python benchmarks/bench_ray.py [--model smollm2-135m] [--prompts 200] [--max-tokens 16] [--one-thread-only]

Results go to benchmarks/results/ray.json under the model's name.
"""

from __future__ import annotations

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import datetime
import json
import logging
import platform
import tempfile
import time
from pathlib import Path

import polars as pl
from rich.console import Console

from engine.backends import Sampling
from engine.config import ExecutionConfig, RespondConfig
from engine.constitution import load_constitution
from engine.executors import executor_for
from engine.keys import stable_hash
from engine.models import resolve_model
from engine.runner import LazyBackend, _progress, run_stage_chunks
from engine.stages import StageContext
from engine.stages.respond import Respond
from engine.store import RunStore

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "benchmarks" / "results" / "ray.json"


def prompts(n: int) -> pl.DataFrame:
    """n prompts: ours (data/prompts/*.jsonl), repeated with a numbered suffix so each is distinct."""
    texts = [t for path in sorted((REPO / "data" / "prompts").glob("*.jsonl")) for t in pl.read_ndjson(path)["prompt"]]
    texts = list(dict.fromkeys(texts))  # demo.jsonl repeats some of the others
    chosen = [texts[i % len(texts)] + ("" if i < len(texts) else f" (variant {i // len(texts)})") for i in range(n)]
    return pl.DataFrame({"prompt_id": [stable_hash(t) for t in chosen], "prompt": chosen, "source": "bench"})


class Clock:
    """Wraps an executor's chunk stream to note when the first chunk and the last one arrived."""

    def __init__(self, executor):
        self.executor, self.marks = executor, []

    def map_chunks(self, stage, todo, backend, chunk_size):
        self.start = time.perf_counter()
        for n, rows in self.executor.map_chunks(stage, todo, backend, chunk_size):
            self.marks.append((time.perf_counter() - self.start, n))
            yield n, rows


def measure(name: str, cfg: ExecutionConfig, table: pl.DataFrame, model: Path, args, out: Path) -> tuple[dict, pl.DataFrame]:
    ctx = StageContext(model=str(model), backend="transformers", seed=0, constitution=load_constitution(REPO / "constitution" / "default.yaml"))
    stage = Respond(RespondConfig(sampling=Sampling(temperature=0.0, top_p=1.0, max_tokens=args.max_tokens)), ctx)
    backend = LazyBackend("transformers", model, {"batch_size": args.batch_size}, 0)
    executor = Clock(executor_for(cfg))
    started = time.perf_counter()
    with RunStore(out / name) as store, _progress(Console(stderr=True, quiet=True)) as progress:
        rows, stats = run_stage_chunks(store, stage, stage.plan({"prompts": table}), backend, args.chunk_size, progress, executor)
    wall = time.perf_counter() - executor.start  # from the stage's start, engine loading included
    backend.close()
    first, last = executor.marks[0][0], executor.marks[-1][0]
    steady_rows = sum(n for _, n in executor.marks[1:])
    steady = steady_rows / (last - first) if last > first else float("nan")
    return {
        "executor": name, "rows": rows.height, "wall_s": round(wall, 2), "first_chunk_s": round(first, 2),
        "rows_per_s": round(rows.height / wall, 2), "steady_rows_per_s": round(steady, 2),
        "overhead_s": round(wall - rows.height / steady, 2), "completion_tokens": stats.completion_tokens,
        "total_s_with_setup": round(time.perf_counter() - started, 2),
    }, rows.sort("response_id").select("response_id", "response")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--chunk-size", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--one-thread-only", action="store_true", help="skip the local run with torch's default threads")
    args = parser.parse_args()
    import ray
    import torch

    import engine.backends.transformers_backend  # noqa: F401  (imported before the clock: the actors' imports are theirs)

    model, table = resolve_model(args.model), prompts(args.prompts)
    runs, texts = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.one_thread_only:
            result, texts["local"] = measure("local", ExecutionConfig(), table, model, args, Path(tmp))
            runs.append(result | {"torch_threads": torch.get_num_threads()})
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        result, texts["local-1-thread"] = measure("local-1-thread", ExecutionConfig(), table, model, args, Path(tmp))
        runs.append(result | {"torch_threads": 1})
        torch.set_num_threads(threads)
        start = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING)
        cluster_start = time.perf_counter() - start
        try:
            for replicas in (1, 2):
                cfg = ExecutionConfig(engine="ray", replicas=replicas)
                result, texts[f"ray-{replicas}"] = measure(f"ray-{replicas}", cfg, table, model, args, Path(tmp))
                runs.append(result | {"torch_threads": 1, "replicas": replicas})
        finally:
            ray.shutdown()
    same = all(frame.equals(texts["local-1-thread"]) for frame in texts.values())
    report = {
        "date": datetime.date.today().isoformat(), "load_average_1m_at_end": round(os.getloadavg()[0], 2), "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU",
        "model": args.model, "backend": f"transformers (batch_size {args.batch_size})", "stage": "respond",
        "prompts": args.prompts, "max_tokens": args.max_tokens, "chunk_size": args.chunk_size,
        "ray_version": ray.__version__, "ray_cluster_start_s": round(cluster_start, 2),
        "same_rows_as_local": same, "runs": runs,
    }
    results = json.loads(RESULT.read_text()) if RESULT.is_file() else {}
    RESULT.write_text(json.dumps(results | {args.model: report}, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
