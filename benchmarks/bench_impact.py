"""Cost of `charter constitution impact` against a full re-judge of the same pairs, on the embedded default.

A SmolLM2-135M run (vLLM, pointwise judge, k = 4 principles of the default constitution's 17) of 112 pairs:
56 of our prompts (data/prompts/helpful + redteam), two responses each, one critique/revision round. Then,
with one judge engine loaded once and used by every call, in one process:
    edit     one principle's check and comparison reworded (what the pointwise judge reads)
    add      a new principle
    remove   one principle removed
    full     the edit again with --rescore-all: every vote scored anew (what a full re-judge costs)
One warm-up call (8 pairs, every vote scored) comes first. Each impact writes to its own fresh folder
(no stored votes to resume from). The full re-judge's labels are
compared with the edit's: they must be the same labels, since reused votes are the same votes.

    python benchmarks/bench_impact.py        # builds (or resumes) the run, then times the four calls
Writes benchmarks/results/impact.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import json
import platform
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.backends import close_backend, load_backend  # noqa: E402
from engine.config import load_recipe  # noqa: E402
from engine.impact import constitution_impact, run_judge  # noqa: E402
from engine.runner import run_recipe  # noqa: E402
from engine.store import RunStore  # noqa: E402

WORK = REPO / "benchmarks" / "out" / "impact"
OUT = REPO / "benchmarks" / "results" / "impact.json"
DEFAULT = REPO / "constitution" / "default.yaml"
EDITED = "clear-and-concise"  # the principle the edit rewords
REMOVED = "no-lecturing"

RECIPE = {
    "name": "impact-bench", "output_dir": str(WORK / "run"), "constitution": str(DEFAULT),
    "model": "smollm2-135m", "backend": "vllm",
    "backend_options": {"max_model_len": 2048, "kv_cache_gib": 2, "enforce_eager": True},
    "seed": 0, "chunk_size": 64,
    "prompts": {"path": str(WORK / "prompts.jsonl"), "column": "prompt"},
    "respond": {"n": 2, "system_prompt": "Answer in at most three short sentences.",
                "sampling": {"temperature": 0.7, "top_p": 0.95, "max_tokens": 96}},
    "critique": {"rounds": 1, "sampling": {"temperature": 0.0, "max_tokens": 96}},
    "judge": {"mode": "pointwise", "principles": 4},
    "filter": {"min_margin": 0.02},
}


def write_inputs() -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    lines = (REPO / "data/prompts/helpful.jsonl").read_text().splitlines() + (REPO / "data/prompts/redteam.jsonl").read_text().splitlines()
    (WORK / "prompts.jsonl").write_text("\n".join(lines[:56]) + "\n")
    recipe = WORK / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE, sort_keys=False))
    return recipe


def variants() -> dict[str, Path]:
    base = yaml.safe_load(DEFAULT.read_text())
    edit = json.loads(json.dumps(base))
    rule = next(p for p in edit["principles"] if p["id"] == EDITED)
    rule["check"] = "Does the reply answer in plain words, with nothing the user did not need?"
    rule["comparison"] = "Which reply answers in plainer words, with nothing the user did not need?"
    add = json.loads(json.dumps(base))
    add["principles"].append({
        "id": "cites-sources", "critique": "Point out claims in the reply that should say where they come from.",
        "revision": "Rewrite the reply so that its factual claims say where they come from.",
        "comparison": "Which reply says where its factual claims come from?",
        "check": "Does the reply say where its factual claims come from?"})
    remove = json.loads(json.dumps(base))
    remove["principles"] = [p for p in remove["principles"] if p["id"] != REMOVED]
    paths = {}
    for name, data in (("edit", edit), ("add", add), ("remove", remove)):
        data["version"] = "9.0.0"
        paths[name] = WORK / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(data, sort_keys=False))
    return paths


def main() -> None:
    recipe = write_inputs()
    start = time.perf_counter()
    result = run_recipe(load_recipe(recipe))
    result.close()
    run_dir = WORK / "run"
    judged = RunStore(run_dir, writer=False).read("judged")
    print(f"run ready: {judged.height} judged pairs ({time.perf_counter() - start:.0f} s)", flush=True)
    rj = run_judge(RunStore(run_dir, writer=False).read_manifest(), run_dir)
    paths = variants()
    load_start = time.perf_counter()
    backend = load_backend(rj.kind, str(rj.model_path), rj.cfg.backend_options, rj.seed)
    load_s = time.perf_counter() - load_start
    calls = {}
    try:
        # warm the engine (its first batches are slower) so that it does not count against the first timed call
        shutil.rmtree(WORK / "impact-warmup", ignore_errors=True)
        constitution_impact(DEFAULT, paths["edit"], run_dir, out_dir=WORK / "impact-warmup", backend=backend,
                            sample=8, rescore_all=True)
        for name, new, rescore in (("edit", "edit", False), ("add", "add", False), ("remove", "remove", False),
                                   ("full", "edit", True)):
            out = WORK / f"impact-{name}"
            shutil.rmtree(out, ignore_errors=True)
            t = time.perf_counter()
            impact = constitution_impact(DEFAULT, paths[new], run_dir, out_dir=out, backend=backend, rescore_all=rescore)
            seconds = time.perf_counter() - t
            r = impact.report
            calls[name] = {"seconds": round(seconds, 2), **{k: r["cost"][k] for k in ("votes", "votes_reused", "votes_scored",
                                                                                        "model_calls", "pairs_rescored")},
                           "flips": r["labels"]["flips"], "by_change": r["labels"]["by_change"],
                           "pairs_resampled": r["labels"]["pairs_resampled"],
                           "kept_before": r["filters"]["kept_before"], "kept_after": r["filters"]["kept_after"],
                           "kept_to_dropped": r["filters"]["kept_to_dropped"], "dropped_to_kept": r["filters"]["dropped_to_kept"]}
            calls[name]["rejudged"] = impact.rejudged.select("pair_id", "p_a", "chosen_side")
            print(name, {k: v for k, v in calls[name].items() if k not in ("rejudged", "by_change")}, flush=True)
    finally:
        close_backend(backend)
    same = calls["edit"].pop("rejudged").join(calls["full"].pop("rejudged"), on="pair_id", suffix="_full")
    for name in ("add", "remove"):
        calls[name].pop("rejudged")
    edit, full = calls["edit"], calls["full"]
    record = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, no GPU",
        "run": {"pairs_judged": judged.height, "model": "smollm2-135m", "backend": "vllm", "judge": "pointwise",
                "principles_per_pair": 4, "principles": 17, "judge_engine_load_s": round(load_s, 1)},
        "calls": calls,
        "edit_vs_full": {
            "model_calls_ratio": round(edit["model_calls"] / full["model_calls"], 4),
            "seconds_ratio": round(edit["seconds"] / full["seconds"], 4),
            "labels_equal": int((same["chosen_side"] == same["chosen_side_full"]).sum()),
            "pairs": same.height,
            "max_abs_p_a_difference": float((same["p_a"] - same["p_a_full"]).abs().max()),
        },
    }
    OUT.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record["edit_vs_full"], indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
