"""Speed and memory of the quality filters (engine/filters.py) and the export (engine/export.py) at scale.

For each size (default 100k and 1M judged pairs) a run directory is generated in batches of BATCH_PAIRS pairs
(so the generator's memory is a batch's): RUN/judged.parquet with prompts of 15-40 words from a
Zipf-distributed vocabulary (2 pairs per prompt, 2% of prompts planted as near-duplicates of an earlier prompt
of their batch with one or two words changed), responses of 50-200 words (drawn from a pool of texts, each made
unique with a row suffix, so every string is materialised), 8 votes per pair, and planted judge errors,
inconsistent, weak, truncated, injected and schema-invalid rows. Then, each in its own subprocess so peak RSS
(VmHWM) is clean, --repeats times (the fastest is reported beside the median and every run):
  filter:    `filter_run(RUN)`, the streaming pass `charter filter` runs: scan, kept/dropped/report written;
  export:    `export_run(RUN)` of the kept pairs (train/test, save_to_disk layout + Parquet; no SFT data);
and once, for sizes up to --in-memory-up-to / --pandas-up-to:
  in_memory: the table read whole and `apply_filters` on it (the same code, the table in memory);
  exact:     near-duplicate prompts by an exact search (all prompt pairs at Jaccard >= threshold, by prefix
             filtering), to compare with those LSH finds;
  pandas:    the same filters written in idiomatic pandas (reference; its own word hashes, so its LSH misses
             other borderline pairs than ours).
Goals: 10M pairs with peak RSS <= 8 GiB; time(10M)/time(1M) <= 11 and time(1M)/time(100k) <= 11;
1M pairs filtered in <= 10 s; 1M kept pairs exported in <= 30 s.

    python benchmarks/bench_filters.py [--sizes 100000 1000000 10000000] [--repeats 3] [--dir /big/disk] [--write-md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
SHA = "0123456789abcdef" * 4
PRINCIPLES = [f"principle-{i:02d}" for i in range(17)]
BATCH_PAIRS = 125_000  # pairs generated, and written as one row group, at a time


# --- synthetic judged pairs -------------------------------------------------------------------------


def _texts(rng: np.random.Generator, vocab: np.ndarray, p: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Word-index arrays -> texts, joined in Polars (no Python loop over rows)."""
    words = rng.choice(len(vocab), size=int(lengths.sum()), p=p)
    return _join(vocab, words, lengths)


def _join(vocab: np.ndarray, words: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    frame = pl.DataFrame({"row": np.repeat(np.arange(len(lengths)), lengths), "w": vocab[words]})
    return frame.group_by("row", maintain_order=True).agg(pl.col("w").str.join(" "))["w"].to_numpy()


def synthetic_batches(n: int, seed: int = 0, pairs_per_prompt: int = 2, batch: int = BATCH_PAIRS) -> Iterator[pl.DataFrame]:
    """n judged pairs, `batch` at a time (each batch seeded by its position), so the generator's memory is a batch's."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = np.array(["".join(rng.choice(letters, size=k)) for k in rng.integers(2, 10, 30_000)])
    p = 1.0 / np.arange(1, len(vocab) + 1) ** 1.1
    p /= p.sum()
    pool = _texts(rng, vocab, p, rng.integers(50, 201, 20_000))
    n_prompts = max(1, n // pairs_per_prompt)
    batch -= batch % pairs_per_prompt  # a prompt's pairs stay in one batch
    for start in range(0, n, batch):
        rows = np.arange(start, min(n, start + batch))
        prompt_of = np.minimum(rows // pairs_per_prompt, n_prompts - 1)
        yield _synthetic_batch(np.random.default_rng([seed, start]), vocab, p, pool, rows, prompt_of)


def _synthetic_prompts(rng: np.random.Generator, vocab: np.ndarray, p: np.ndarray, n_prompts: int) -> np.ndarray:
    """Prompts of 15-40 words; 2% echo an earlier prompt of the batch with one or two words changed."""
    lengths = rng.integers(15, 41, n_prompts)
    echoes = rng.choice(np.arange(1, n_prompts), size=n_prompts // 50, replace=False) if n_prompts > 50 else np.array([], int)
    sources = (rng.random(len(echoes)) * echoes).astype(int)  # an earlier prompt
    lengths[echoes] = lengths[sources]
    words = rng.choice(len(vocab), size=int(lengths.sum()), p=p)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    for echo, source, length in zip(starts[echoes], starts[sources], lengths[echoes]):  # copy an earlier prompt
        words[echo:echo + length] = words[source:source + length]
    for share in (1.0, 0.5):  # then change one word of every echo, and a second one of half of them
        change = rng.random(len(echoes)) < share
        at = starts[echoes] + (rng.random(len(echoes)) * lengths[echoes]).astype(int)
        words[at[change]] = rng.integers(0, len(vocab), int(change.sum()))
    return _join(vocab, words, lengths)


def _synthetic_batch(rng, vocab, p, pool, rows: np.ndarray, prompt_of: np.ndarray) -> pl.DataFrame:
    n = len(rows)
    first = prompt_of[0]
    prompts = _synthetic_prompts(rng, vocab, p, int(prompt_of[-1] - first + 1))
    side_a = rng.random(n) < 0.5
    margin = rng.beta(2, 5, n) * 0.5
    r = rng.random(n)
    frame = pl.DataFrame({
        "row": rows,
        "prompt_id": pl.Series(prompt_of).cast(pl.String).str.zfill(9).to_numpy(),
        "prompt": prompts[prompt_of - first] + "?",
        "a": pool[rng.integers(0, len(pool), n)], "b": pool[rng.integers(0, len(pool), n)],
        "response_a_finish_reason": np.where(r < 0.02, "length", "stop"),
        "response_b_finish_reason": np.where((r > 0.02) & (r < 0.04), "length", "stop"),
        "chosen_side": np.where(side_a, "a", "b"),
        "margin": margin,
        "swap_consistency": rng.choice([0.5, 0.75, 1.0], n, p=[0.05, 0.15, 0.8]),
        "principle_agreement": rng.choice([0.5, 0.75, 1.0], n, p=[0.1, 0.2, 0.7]),
        "judge_injection_suspect": rng.random(n) < 0.005,
        "judge_failed": rng.random(n) < 0.01,
        "bad_hash": rng.random(n) < 0.001,
    })
    votes = _votes(rng, n)
    a = pl.concat_str("a", pl.lit(" #"), pl.col("row").cast(pl.String))  # unique texts, fully materialised
    b = pl.concat_str("b", pl.lit(" ~"), pl.col("row").cast(pl.String))
    failed = pl.col("judge_failed")
    return frame.with_columns(votes=votes).select(
        pl.format("pair-{}", pl.col("row")).alias("pair_id"), "prompt_id", "prompt",
        a.alias("response_a"), b.alias("response_b"), "response_a_finish_reason", "response_b_finish_reason",
        pl.when(failed).then(None).otherwise(pl.when(pl.col("chosen_side") == "a").then(a).otherwise(b)).alias("chosen"),
        pl.when(failed).then(None).otherwise(pl.when(pl.col("chosen_side") == "a").then(b).otherwise(a)).alias("rejected"),
        pl.when(failed).then(None).otherwise("chosen_side").alias("chosen_side"),
        pl.when(failed).then(None).otherwise(0.5 + pl.col("margin")).alias("p_chosen"),
        pl.when(failed).then(None).otherwise("margin").alias("margin"),
        (pl.col("swap_consistency") == 1.0).alias("swap_consistent"), "swap_consistency", "principle_agreement",
        pl.lit(4).alias("n_principles_scored"), "votes", "judge_injection_suspect",
        pl.when(failed).then(pl.lit("prompt too long")).alias("judge_error"),
        pl.lit("1.0.0").alias("constitution_version"),
        pl.when("bad_hash").then(pl.lit("")).otherwise(pl.lit(SHA)).alias("constitution_sha256"),
        pl.lit("policy").alias("model"), pl.lit("judge").alias("judge_model"), pl.lit("original-vs-revision").alias("pair_kind"),
    )


def _votes(rng: np.random.Generator, n: int) -> pl.Series:
    """4 sampled principles x 2 orders per pair, as the judge stores them."""
    principles = np.argsort(rng.random((n, len(PRINCIPLES))), axis=1)[:, :4]
    long = pl.DataFrame({
        "row": np.repeat(np.arange(n), 8),
        "principle_id": np.array(PRINCIPLES)[np.repeat(principles, 2, axis=1).ravel()],
        "order": np.tile(["ab", "ba"], 4 * n),
        "p_first": rng.random(8 * n),
    }).with_columns(pl.lit(None, dtype=pl.String).alias("error"))
    return long.group_by("row", maintain_order=True).agg(pl.struct("principle_id", "order", "p_first", "error").alias("v"))["v"]


def write_synthetic_run(run_dir: Path, n: int, seed: int = 0) -> None:
    """RUN/judged.parquet of n synthetic pairs, one row group per batch (as a run's own table is written)."""
    import pyarrow.parquet as pq

    run_dir.mkdir(parents=True, exist_ok=True)
    writer = None
    for frame in synthetic_batches(n, seed):
        table = frame.to_arrow()
        writer = writer or pq.ParquetWriter(run_dir / "judged.parquet", table.schema, compression="zstd")
        writer.write_table(table)
    writer.close()


def exact_near_duplicates(judged: Path, threshold: float, ngram: int) -> int:
    """Prompts an exact search drops as near-duplicates: every prompt pair at word-n-gram Jaccard >= threshold among
    the prompts the row filters leave, found by prefix filtering (two sets that similar share one of their rarest
    tokens), not by LSH. Compare with the report's diversity: prompts_checked - prompts_kept."""
    from engine.config import FilterConfig
    from engine.dedup import connected_components, word_ngram_hashes
    from engine.filters import surviving_prompts

    prompts = surviving_prompts(pl.scan_parquet(judged), FilterConfig()).collect(engine="streaming").sort("prompt_id")
    owner, shingles = word_ngram_hashes(prompts["prompt"], ngram)
    sets = pl.DataFrame({"o": owner, "h": shingles}).unique()
    sets = sets.join(sets.group_by("h").len("rarity"), on="h").join(sets.group_by("o").len("size"), on="o")
    sets = sets.sort("o", "rarity", "h").with_columns(rank=pl.int_range(pl.len()).over("o"))
    prefix = sets.filter(pl.col("rank") < pl.col("size") - (pl.col("size") * threshold).ceil() + 1).select("o", "h")
    candidates = prefix.join(prefix, on="h").filter(pl.col("o") < pl.col("o_right")).select(u="o", v="o_right").unique()
    members, sizes = sets.select("o", "h"), sets.select("o", "size").unique()
    similar = []
    for start in range(0, candidates.height, 200_000):  # the exact Jaccard of 200,000 candidate pairs at a time
        shared = (candidates.slice(start, 200_000).join(members, left_on="u", right_on="o")
                  .join(members, left_on=["v", "h"], right_on=["o", "h"], how="semi").group_by("u", "v").len("shared"))
        scored = shared.join(sizes, left_on="u", right_on="o").join(sizes, left_on="v", right_on="o", suffix="_v")
        similar.append(scored.filter(pl.col("shared") / (pl.col("size") + pl.col("size_v") - pl.col("shared")) >= threshold))
    similar = pl.concat(similar) if similar else pl.DataFrame(schema={"u": pl.Int64, "v": pl.Int64})
    labels = connected_components(prompts.height, similar["u"].to_numpy(), similar["v"].to_numpy())
    return int((labels != np.arange(prompts.height)).sum())


# --- the same filters in pandas ---------------------------------------------------------------------


def pandas_filters(df, cfg) -> dict[str, int]:
    """Idiomatic pandas: boolean masks, .str methods, groupby; the first reason wins. Returns counts per reason."""
    import pandas as pd

    from engine.dedup import NUM_PERM, connected_components, lsh_bands, minhash_signatures
    from engine.filters import REASONS

    reason = pd.Series(None, index=df.index, dtype=object)

    def mark(mask, name):
        reason[mask.fillna(False).astype(bool) & reason.isna()] = name

    mark(df["chosen"].isna(), "judge_error")
    mark(~df["swap_consistent"].fillna(False).astype(bool), "swap_inconsistent")
    mark(df["principle_agreement"] < cfg.min_principle_agreement, "principle_disagreement")
    mark(df["margin"] < cfg.min_margin, "weak_preference")
    chosen, rejected = df["chosen"].str.strip(), df["rejected"].str.strip()
    a_chosen = df["chosen_side"] == "a"
    chosen_finish = df["response_a_finish_reason"].where(a_chosen, df["response_b_finish_reason"])
    rejected_finish = df["response_b_finish_reason"].where(a_chosen, df["response_a_finish_reason"])
    truncated = (chosen_finish == "length") | (rejected_finish == "length")
    mark((chosen == "") | (rejected == "") | (chosen == rejected) | truncated, "degenerate")
    ratio = df["chosen"].str.len() / df["rejected"].str.len()
    mark((ratio < cfg.min_length_ratio) | (ratio > cfg.max_length_ratio), "length_bias")
    mark(df["judge_injection_suspect"], "judge_injection")

    survivors = df.loc[reason.isna(), ["prompt_id", "prompt"]].drop_duplicates("prompt_id").sort_values("prompt_id")
    words = survivors["prompt"].str.lower().str.findall(r"\w+").explode()
    owner = pd.factorize(words.index)[0] if len(words) else np.array([], int)
    hashes = pd.util.hash_array(words.fillna("").to_numpy(dtype=object))
    same = np.r_[owner[1:] == owner[:-1], False]
    grams = (hashes * np.uint64(0x9E3779B97F4A7C15)) ^ np.r_[hashes[1:], np.uint64(0)]
    keep = same | np.r_[True, owner[1:] != owner[:-1]]  # bigrams, and one-word prompts
    owner, grams = owner[keep], np.where(same[keep], grams[keep], hashes[keep])
    n = len(survivors)
    bands, rows = lsh_bands(cfg.near_duplicate_threshold, NUM_PERM)
    signatures = minhash_signatures(owner, grams, n, bands * rows)
    edges = []
    for band in range(bands):
        columns = pd.DataFrame(signatures[:, band * rows:(band + 1) * rows]).assign(u=np.arange(n))
        root = columns.groupby(list(range(rows)))["u"].transform("min")
        edges.append(pd.DataFrame({"u": columns["u"], "v": root}).query("u != v"))
    edges = pd.concat(edges).drop_duplicates()
    sets = pd.DataFrame({"owner": owner, "h": grams}).drop_duplicates()
    sizes = sets.groupby("owner").size()
    shared = (edges.merge(sets, left_on="u", right_on="owner").merge(sets, left_on=["v", "h"], right_on=["owner", "h"])
              .groupby(["u", "v"]).size().rename("shared").reset_index())
    jaccard = shared["shared"] / (sizes.loc[shared["u"]].to_numpy() + sizes.loc[shared["v"]].to_numpy() - shared["shared"])
    similar = shared[jaccard.to_numpy() >= cfg.near_duplicate_threshold]
    labels = connected_components(n, similar["u"].to_numpy(), similar["v"].to_numpy())
    duplicate_ids = set(survivors["prompt_id"].to_numpy()[labels != np.arange(n)])
    mark(df["prompt_id"].isin(duplicate_ids), "near_duplicate_prompt")

    principle_ids = df["votes"].map(lambda votes: {v["principle_id"] for v in votes if v["p_first"] is not None})
    valid = (
        df["p_chosen"].between(0.5, 1) & df["margin"].between(0, 0.5) & df["principle_agreement"].between(0, 1)
        & df["swap_consistent"].notna() & (df["prompt"].str.len() > 0) & (df["chosen"].str.len() > 0)
        & (df["rejected"].str.len() > 0) & (df["pair_id"].str.len() > 0) & (df["prompt_id"].str.len() > 0)
        & df["constitution_version"].str.match(r"[0-9]+\.[0-9]+\.[0-9]+") & df["constitution_sha256"].str.fullmatch(r"[0-9a-f]{64}")
        & (df["model"].str.len() > 0) & (df["judge_model"].str.len() > 0) & (principle_ids.map(len) > 0)
    )
    mark(~valid, "schema_invalid")
    counts = reason.value_counts()
    return {r: int(counts.get(r, 0)) for r in REASONS}


# --- one measurement per subprocess -----------------------------------------------------------------


def child(mode: str, run: str, size: str | None = None) -> dict:
    """One measurement in a fresh process (peak RSS is this process's own)."""
    from engine.config import ExportConfig, FilterConfig

    run_dir = Path(run)
    cpu, start = _cpu_s(), time.perf_counter()
    if mode == "generate":
        write_synthetic_run(run_dir, int(size))
        return {"generate_s": round(time.perf_counter() - start, 1), "peak_rss_mb": peak_rss_mb(),
                "judged_mb": round((run_dir / "judged.parquet").stat().st_size / 2**20, 1)}
    if mode == "filter":  # the streaming pass, as `charter filter RUN` runs it
        from engine.filters import filter_run

        report = filter_run(run_dir, FilterConfig()).report
        diversity = report["diversity"]
        result = {"filter_s": _since(start), "kept": report["kept"], "dropped": report["dropped"],
                  "near_duplicate_clusters": diversity["near_duplicate_clusters"],
                  "duplicate_prompts": diversity["prompts_checked"] - diversity["prompts_kept"]}
    elif mode == "export":  # as `charter export RUN`, pairs only (SFT data would need a pairs table)
        from engine.export import export_run

        out = export_run(run_dir, ExportConfig(sft=False))
        counts = json.loads((out / "dataset" / "train" / "state.json").read_text())
        result = {"export_s": _since(start), "export_shards": {"train": len(counts["_data_files"])}}
    elif mode == "in_memory":  # the same filters on a table read whole into memory (apply_filters)
        from engine.filters import apply_filters

        frame = pl.read_parquet(run_dir / "judged.parquet")
        loaded = time.perf_counter()
        filtered = apply_filters(frame, FilterConfig())
        result = {"read_s": round(loaded - start, 3), "filter_s": _since(loaded), "kept": filtered.report["kept"],
                  "dropped": filtered.report["dropped"], "table_mb": round(frame.estimated_size("mb"), 1)}
    elif mode == "exact":  # near-duplicate prompts by an exact search, to check what LSH finds
        result = {"exact_duplicate_prompts": exact_near_duplicates(run_dir / "judged.parquet", 0.6, 2)}
    else:
        import pandas as pd

        frame = pd.read_parquet(run_dir / "judged.parquet")
        loaded = time.perf_counter()
        counts = pandas_filters(frame, FilterConfig())
        result = {"read_s": round(loaded - start, 3), "filter_s": _since(loaded), "kept": len(frame) - sum(counts.values()),
                  "dropped": counts}
    return {**result, "cpu_s": round(_cpu_s() - cpu, 1), "peak_rss_mb": peak_rss_mb()}


def _since(start: float) -> float:
    return round(time.perf_counter() - start, 3)


def _cpu_s() -> float:
    """User + system CPU seconds of this process: steadier than wall time on a machine others share."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def best_of(runs: list[dict], key: str) -> dict:
    """The fastest run by `key`, with every run's seconds, the median and the highest peak RSS beside it."""
    best = dict(min(runs, key=lambda r: r[key]))
    seconds = sorted(r[key] for r in runs)
    best[f"all_{key}"] = [r[key] for r in runs]
    best[f"median_{key}"] = seconds[len(seconds) // 2]
    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    return best


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM starts afresh at exec; ru_maxrss would carry the forking parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_child(*args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def render_markdown(report: dict) -> str:
    env, goals = report["environment"], report["goals"]
    lines = [
        f"## quality filters at ten million pairs, {env['date']}", "",
        f"Machine: {env['nproc']} CPUs, {env['platform']}; polars {env['polars']}, numpy {env['numpy']}.",
        "Synthetic judged pairs (2 per prompt, 2% near-duplicate prompts planted), generated in batches into RUN/judged.parquet;",
        "filter = `filter_run` (judged.parquet read in batches, kept/dropped/report written), export = `export_run` (pairs, no SFT),",
        f"each in its own process; fastest of {report['repeats']} runs (all runs and medians in filters.json).", "",
        "| pairs | filter s | median | export s | kept | filter peak RSS MB | export peak RSS MB | near-dup dropped |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size, r in report["sizes"].items():
        s = r["streaming"]
        lines.append(f"| {int(size):,} | {s['filter_s']} | {s['median_filter_s']} | {s['export_s']} | {s['kept']:,} | "
                     f"{s['peak_rss_mb']} | {s['export_peak_rss_mb']} | {s['dropped']['near_duplicate_prompt']:,} |")
    exact = [f"{int(size):,} pairs: LSH {r['streaming']['duplicate_prompts']:,}, exact {r['exact']['exact_duplicate_prompts']:,}"
             for size, r in report["sizes"].items() if "exact" in r]
    if exact:
        lines += ["", "Near-duplicate prompts dropped: " + "; ".join(exact) + "."]
    lines += ["", "Goals: " + "; ".join(f"{k}: {v}" for k, v in goals.items()) + "."]
    return "\n".join(lines) + "\n"


def summarise(filters: list[dict], exports: list[dict], generated: dict) -> dict:
    """The streaming filter's best run, with the export's best run and the generator's figures beside it."""
    best, export = best_of(filters, "filter_s"), best_of(exports, "export_s")
    best.update({"export_s": export["export_s"], "all_export_s": export["all_export_s"],
                 "median_export_s": export["median_export_s"], "export_cpu_s": export["cpu_s"],
                 "export_peak_rss_mb": export["peak_rss_mb"], "judged_mb": generated["judged_mb"],
                 "generate_s": generated["generate_s"], "generate_peak_rss_mb": generated["peak_rss_mb"]})
    return best


def check_goals(sizes: dict) -> dict:
    streaming = {int(s): r["streaming"] for s, r in sizes.items()}
    seconds = {s: r["filter_s"] for s, r in streaming.items()}

    def ratio(big: int, small: int) -> float | None:
        return round(seconds[big] / seconds[small], 2) if {big, small} <= set(seconds) else None

    largest = streaming[max(streaming)]
    export_per_million = round(largest["export_s"] / largest["kept"] * 1e6, 1) if largest["kept"] else None
    peak_10m = max(streaming[10_000_000]["peak_rss_mb"], streaming[10_000_000]["export_peak_rss_mb"]) \
        if 10_000_000 in streaming else None
    return {
        "10M_peak_rss_mb": peak_10m,
        "10M_within_8GiB": None if peak_10m is None else peak_10m <= 8 * 1024,
        "ratio_10M_1M": ratio(10_000_000, 1_000_000),
        "ratio_1M_100k": ratio(1_000_000, 100_000),
        "1M_filter_within_10s": seconds[1_000_000] <= 10 if 1_000_000 in seconds else None,
        f"export_s_per_1M_kept (at {max(streaming):,} pairs)": export_per_million,
        "export_1M_kept_within_30s": None if export_per_million is None else export_per_million <= 30,
    }


def measure(size: int, run: Path, args: argparse.Namespace) -> dict:
    """Generate one size, then filter and export it --repeats times; in memory and in pandas where small enough."""
    generated = run_child("generate", str(run), str(size))  # in its own process: this one stays small
    print(f"{size:,} pairs generated in {generated['generate_s']} s ({generated['judged_mb']} MB)", flush=True)
    filters, exports = [], []
    for _ in range(args.repeats):
        for stale in ("kept.parquet", "dropped.parquet", "export"):  # each run writes anew (and disk is finite)
            shutil.rmtree(run / stale) if (run / stale).is_dir() else (run / stale).unlink(missing_ok=True)
        filters.append(run_child("filter", str(run)))
        (run / "dropped.parquet").unlink()  # the export reads kept only; 10M pairs fill a small disk otherwise
        exports.append(run_child("export", str(run)))
        print(f"  filter {filters[-1]['filter_s']} s, export {exports[-1]['export_s']} s", flush=True)
    result = {"streaming": summarise(filters, exports, generated)}
    if size <= args.in_memory_up_to:
        result["in_memory"] = run_child("in_memory", str(run))
        result["same_counts_in_memory"] = result["in_memory"]["dropped"] == result["streaming"]["dropped"]
        result["exact"] = run_child("exact", str(run))
    if size <= args.pandas_up_to:
        result["pandas"] = run_child("pandas", str(run))
        result["same_counts_pandas"] = result["pandas"]["dropped"] == result["streaming"]["dropped"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3, help="filter and export runs per size; the fastest is reported")
    parser.add_argument("--in-memory-up-to", type=int, default=1_000_000, help="largest size also filtered in memory")
    parser.add_argument("--pandas-up-to", type=int, default=100_000, help="largest size also filtered by pandas")
    parser.add_argument("--dir", default=None, help="where run directories are generated (default: a temporary one)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "filters.json"))
    parser.add_argument("--write-md", action="store_true", help="append a section to --md")
    parser.add_argument("--md", default=str(REPO / "benchmarks" / "RESULTS.md"))
    parser.add_argument("--child", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return

    started, sizes = datetime.datetime.now(datetime.timezone.utc), {}
    with tempfile.TemporaryDirectory(prefix="charter-bench-filters-", dir=args.dir) as tmp:
        for size in args.sizes:
            sizes[str(size)] = measure(size, Path(tmp) / f"run-{size}", args)
            shutil.rmtree(Path(tmp) / f"run-{size}")
            print(json.dumps(sizes[str(size)]), flush=True)
    env = {"date": started.strftime("%Y-%m-%d %H:%M UTC"), "nproc": os.cpu_count(),
           "platform": platform.platform(), "polars": pl.__version__, "numpy": np.__version__}
    report = {"environment": env, "repeats": args.repeats, "sizes": sizes, "goals": check_goals(sizes)}
    save_results(report, args.out, args.md if args.write_md else None, render_markdown)


def save_results(report: dict, out: str | Path, md: str | Path | None, render: Callable[[dict], str]) -> None:
    """The JSON results file, and (when `md` is given) the rendered section appended to RESULTS.md."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    if md is not None:
        with open(md, "a", encoding="utf-8") as f:
            f.write("\n" + render(report))
        print(f"appended to {md}")


if __name__ == "__main__":
    main()
