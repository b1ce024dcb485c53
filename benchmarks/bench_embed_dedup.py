"""Cost of the optional semantic prompt dedup (engine/embeddings.py) next to the lexical MinHash pass.

Real prompts: the last human turn of every row of the HH-RLHF harmless-base test file in ../shared/data
(2,312 rows; a multi-turn conversation's last user message). Measured in one process:
  - embedding them with all-MiniLM-L6-v2 on CPU (prompts/s),
  - the exact blockwise cosine search over those embeddings, and over 20k and 100k random unit vectors
    (timing only: random 384-d vectors are never similar, so the pair count there is 0),
  - how many HH prompt pairs each cosine threshold finds, beside the lexical (word-bigram Jaccard 0.6)
    filter over the same prompts.

    python benchmarks/bench_embed_dedup.py [--hh PATH] [--write-md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
HH = REPO.parent / "shared" / "data" / "hh-rlhf" / "harmless-base-test.jsonl.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hh", default=str(HH))
    parser.add_argument("--random-sizes", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "embed_dedup.json"))
    parser.add_argument("--write-md", action="store_true")
    parser.add_argument("--md", default=str(REPO / "benchmarks" / "RESULTS.md"))
    args = parser.parse_args()

    import polars as pl
    import torch

    from engine.config import FilterConfig
    from engine.embeddings import embed_texts, resolve_embedding_model, similar_pairs
    from engine.dedup import drop_near_duplicate_prompts
    from engine.preferences import load_preferences

    prompts = load_preferences(args.hh).pairs.unique("prompt", keep="first", maintain_order=True)
    texts = prompts["prompt"].to_list()
    resolve_embedding_model("all-minilm-l6-v2")  # install outside the timing
    start = time.perf_counter()
    vectors = embed_texts(texts)
    embed_s = time.perf_counter() - start

    searches = {}
    start = time.perf_counter()
    similar_pairs(vectors, 0.8)
    searches[str(len(texts))] = round(time.perf_counter() - start, 3)
    rng = np.random.default_rng(0)
    for size in args.random_sizes:
        random = rng.standard_normal((size, vectors.shape[1]), dtype=np.float32)
        random /= np.linalg.norm(random, axis=1, keepdims=True)
        start = time.perf_counter()
        similar_pairs(random, 0.8)
        searches[str(size)] = round(time.perf_counter() - start, 3)
        print(f"cosine search over {size:,} vectors: {searches[str(size)]} s", flush=True)

    found = {str(t): int(len(similar_pairs(vectors, t)[0])) for t in (0.95, 0.9, 0.85, 0.8)}
    rows = pl.DataFrame({"prompt_id": [f"p{i:05d}" for i in range(len(texts))], "prompt": texts})
    start = time.perf_counter()
    dropped, diversity = drop_near_duplicate_prompts(rows, FilterConfig())
    lexical_s = time.perf_counter() - start

    report = {
        "environment": {"date": datetime.date.today().isoformat(), "nproc": os.cpu_count(), "platform": platform.platform(),
                        "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
        "prompts": len(texts),
        "mean_words": round(float(np.mean([len(t.split()) for t in texts])), 1),
        "embed_s": round(embed_s, 2),
        "prompts_per_s": round(len(texts) / embed_s, 1),
        "search_s": searches,
        "hh_pairs_at_cosine": found,
        "lexical": {"seconds": round(lexical_s, 3), "similar_pairs": diversity["similar_pairs"]["lexical"],
                    "prompts_dropped": dropped.height},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    if args.write_md:
        with open(args.md, "a", encoding="utf-8") as md:
            md.write("\n" + render_markdown(report))


def render_markdown(r: dict) -> str:
    env = r["environment"]
    searches = ", ".join(f"{int(k):,}: {v} s" for k, v in r["search_s"].items())
    found = ", ".join(f">= {k}: {v}" for k, v in r["hh_pairs_at_cosine"].items())
    return "\n".join([
        f"## semantic prompt dedup, {env['date']}", "",
        f"Machine: {env['nproc']} CPUs, {env['platform']}; torch {env['torch']} ({env['torch_threads']} threads).",
        f"{r['prompts']:,} distinct HH-RLHF harmless-base test prompts (last human turn, {r['mean_words']} words on average).", "",
        "| step | result |", "|---|---|",
        f"| embed with all-MiniLM-L6-v2 | {r['embed_s']} s, {r['prompts_per_s']} prompts/s |",
        f"| exact cosine search (vectors: seconds) | {searches} |",
        f"| HH prompt pairs by cosine | {found} |",
        f"| lexical MinHash pass, word-bigram Jaccard 0.6 | {r['lexical']['seconds']} s, {r['lexical']['similar_pairs']} pairs, "
        f"{r['lexical']['prompts_dropped']} prompts dropped |", "",
    ])


if __name__ == "__main__":
    main()
