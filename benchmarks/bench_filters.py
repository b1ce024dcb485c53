"""Speed and memory of the quality filters (engine/filters.py) on synthetic judged tables, against pandas.

For each size (default 100k and 1M judged pairs) a synthetic table is written to Parquet: prompts of
15-40 words from a Zipf-distributed vocabulary (2 pairs per prompt, 2% of prompts planted as
near-duplicates with one or two words changed), responses of 50-200 words (drawn from a pool of texts,
each made unique with a row suffix, so every string is materialised), 8 votes per pair, and planted
judge errors, inconsistent, weak, truncated, injected and schema-invalid rows. Then, each in its own
subprocess so peak RSS (VmHWM) is clean:
  polars: `apply_filters` (the whole chain, near-duplicate prompts and the schema check included);
  pandas: the same filters written in idiomatic pandas (masks, str methods, groupby; the same MinHash
          signature code; drop reasons only, no detail strings), as the reference.
Each engine runs --repeats times per size (alternating), the fastest run is reported beside the median:
this machine's timings drift by 15% and more between runs. The table is generated in a process of its
own too, so the parent does not hold gigabytes while the engines run.
Goals: 1M pairs in <= 10 s; time(1M) / time(100k) <= 12.

    python benchmarks/bench_filters.py [--sizes 100000 1000000] [--repeats 3] [--write-md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
SHA = "0123456789abcdef" * 4
PRINCIPLES = [f"principle-{i:02d}" for i in range(17)]


# --- synthetic judged pairs -------------------------------------------------------------------------


def _texts(rng: np.random.Generator, vocab: np.ndarray, p: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Word-index arrays -> texts, joined in Polars (no Python loop over rows)."""
    words = rng.choice(len(vocab), size=int(lengths.sum()), p=p)
    return _join(vocab, words, lengths)


def _join(vocab: np.ndarray, words: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    frame = pl.DataFrame({"row": np.repeat(np.arange(len(lengths)), lengths), "w": vocab[words]})
    return frame.group_by("row", maintain_order=True).agg(pl.col("w").str.join(" "))["w"].to_numpy()


def synthetic_judged(n: int, seed: int = 0, pairs_per_prompt: int = 2) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = np.array(["".join(rng.choice(letters, size=k)) for k in rng.integers(2, 10, 30_000)])
    p = 1.0 / np.arange(1, len(vocab) + 1) ** 1.1
    p /= p.sum()

    n_prompts = max(1, n // pairs_per_prompt)
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
    prompts = _join(vocab, words, lengths)

    pool = _texts(rng, vocab, p, rng.integers(50, 201, 20_000))
    prompt_of = np.minimum(np.arange(n) // pairs_per_prompt, n_prompts - 1)
    side_a = rng.random(n) < 0.5
    margin = rng.beta(2, 5, n) * 0.5
    r = rng.random(n)
    frame = pl.DataFrame({
        "row": np.arange(n),
        "prompt_id": pl.Series(prompt_of).cast(pl.String).str.zfill(9).to_numpy(),
        "prompt": prompts[prompt_of] + "?",
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


def child(mode: str, path: str, size: str | None = None) -> dict:
    from engine.config import FilterConfig

    if mode == "generate":
        synthetic_judged(int(size)).write_parquet(path)
        return {}

    start = time.perf_counter()
    if mode == "polars":
        from engine.filters import apply_filters

        frame = pl.read_parquet(path)
        loaded = time.perf_counter()
        result = apply_filters(frame, FilterConfig())
        counts, kept, table_mb = result.report["dropped"], result.report["kept"], frame.estimated_size("mb")
    else:
        import pandas as pd

        frame = pd.read_parquet(path)
        loaded = time.perf_counter()
        counts = pandas_filters(frame, FilterConfig())
        kept, table_mb = len(frame) - sum(counts.values()), frame.memory_usage(deep=True).sum() / 2**20
    done = time.perf_counter()
    return {"read_s": round(loaded - start, 3), "filter_s": round(done - loaded, 3), "kept": kept, "dropped": counts,
            "table_mb": round(table_mb, 1), "peak_rss_mb": peak_rss_mb()}


def best_of(runs: list[dict]) -> dict:
    """The fastest run, with every run's seconds and the median beside it."""
    best = dict(min(runs, key=lambda r: r["filter_s"]))
    seconds = sorted(r["filter_s"] for r in runs)
    best["all_filter_s"] = [r["filter_s"] for r in runs]
    best["median_filter_s"] = seconds[len(seconds) // 2]
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
    env = report["environment"]
    lines = [
        f"## quality filters, {env['date']}", "",
        f"Machine: {env['nproc']} CPUs, {env['platform']}; polars {env['polars']}, pandas {env['pandas']}, numpy {env['numpy']}.",
        "Synthetic judged pairs (2 per prompt, 2% near-duplicate prompts planted); each engine in its own process;",
        f"seconds = the whole filter chain on a loaded table (Parquet read excluded, `read_s` in filters.json), fastest of "
        f"{report['repeats']} runs per engine, engines alternating (median in filters.json).", "",
        "| pairs | polars s | pandas s | pandas/polars | polars peak RSS MB | pandas peak RSS MB | kept | near-dup dropped |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size, r in report["sizes"].items():
        pol, pan = r["polars"], r["pandas"]
        lines.append(f"| {int(size):,} | {pol['filter_s']} | {pan['filter_s']} | {r['pandas_over_polars']} | {pol['peak_rss_mb']} | "
                     f"{pan['peak_rss_mb']} | {pol['kept']:,} | {pol['dropped']['near_duplicate_prompt']:,} |")
    goals = {k: ("not measured" if v is None else v) for k, v in report["goals"].items()}
    lines += ["", f"Goals: 1M pairs <= 10 s: {goals['1M_within_10s']}; "
              f"time(1M)/time(100k) = {goals['ratio_1M_100k']} (goal <= 12)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--skip-pandas", action="store_true")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "filters.json"))
    parser.add_argument("--write-md", action="store_true", help="append a section to --md")
    parser.add_argument("--md", default=str(REPO / "benchmarks" / "RESULTS.md"))
    parser.add_argument("--repeats", type=int, default=3, help="runs per engine and size; the fastest is reported")
    parser.add_argument("--child", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return

    import pandas

    sizes = {}
    with tempfile.TemporaryDirectory(prefix="charter-bench-filters-") as tmp:
        for size in args.sizes:
            path = Path(tmp) / f"judged-{size}.parquet"
            start = time.perf_counter()
            run_child("generate", str(path), str(size))  # in its own process: this one stays small
            print(f"{size:,} pairs generated in {time.perf_counter() - start:.1f} s", flush=True)
            engines = ["polars"] + ([] if args.skip_pandas else ["pandas"])
            runs = {engine: [] for engine in engines}
            for _ in range(args.repeats):  # alternate engines, so drift on a noisy machine hits both
                for engine in engines:
                    runs[engine].append(run_child(engine, str(path)))
            result = {engine: best_of(r) for engine, r in runs.items()}
            if not args.skip_pandas:
                result["pandas_over_polars"] = round(result["pandas"]["filter_s"] / result["polars"]["filter_s"], 2)
                result["same_counts"] = result["pandas"]["dropped"] == result["polars"]["dropped"]
            sizes[str(size)] = result
            print(json.dumps(result), flush=True)
    times = {int(s): r["polars"]["filter_s"] for s, r in sizes.items()}
    goals = {
        "1M_within_10s": times[1_000_000] <= 10 if 1_000_000 in times else None,
        "ratio_1M_100k": round(times[1_000_000] / times[100_000], 2) if {100_000, 1_000_000} <= set(times) else None,
    }
    env = {"date": datetime.date.today().isoformat(), "nproc": os.cpu_count(), "platform": platform.platform(),
           "polars": pl.__version__, "pandas": pandas.__version__, "numpy": np.__version__}
    report = {"environment": env, "repeats": args.repeats, "sizes": sizes, "goals": goals}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    if args.write_md and not args.skip_pandas:
        with open(args.md, "a", encoding="utf-8") as md:
            md.write("\n" + render_markdown(report))
        print(f"appended to {args.md}")


if __name__ == "__main__":
    main()
