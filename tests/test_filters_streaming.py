"""The streaming filter pass (`filter_run` over RUN/judged.parquet) gives what the in-memory one gives, and a run
whose judged table is larger than the memory a process may use still filters and exports."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import polars as pl
import pytest

from conftest import REPO
from engine.config import FilterConfig
from engine.dedup import drop_near_duplicate_prompts
from engine.filters import REASONS, apply_filters, filter_run
from test_filters import judged, pair, prompt_text


def paraphrase(text: str) -> str:
    """One word changed and one appended: word-bigram Jaccard well above 0.6 for a 25-word prompt."""
    words = text.split()
    words[5] = "changed"
    return " ".join(words) + " please"


def every_reason() -> pl.DataFrame:
    """Rows dropped for each reason, and kept ones, with prompts shared by several pairs."""
    rows = [pair(i, prompt_id=f"prompt-{i % 7:03d}", prompt=prompt_text(i % 7)) for i in range(28)]  # 4 pairs per prompt
    rows += [
        pair(100, chosen_side=None, p_a=None, p_chosen=None, margin=None, swap_consistent=None, swap_consistency=None,
             principle_agreement=None, judge_error="prompt too long"),
        pair(101, swap_consistent=False, swap_consistency=0.5),
        pair(102, principle_agreement=0.5),
        pair(103, p_chosen=0.55, margin=0.05),
        pair(104, response_b="   "),
        pair(105, response_b="A much longer revised answer. " * 10),
        pair(106, judge_injection_suspect=True),
        pair(107, p_chosen=1.7),
        pair(108, swap_consistent=None, swap_consistency=None, principle_agreement=None),  # kept: nothing to check
    ]
    rows += [pair(200 + k, prompt_id=f"prompt-echo-{k}", prompt=paraphrase(prompt_text(k))) for k in range(3)]
    return judged(*rows)


def write_run(tmp_path, frame: pl.DataFrame):
    run = tmp_path / "run"
    run.mkdir()
    frame.write_parquet(run / "judged.parquet", row_group_size=5)  # several row groups: the scan streams them
    return run


def test_streaming_and_in_memory_passes_give_identical_kept_dropped_and_report(tmp_path):
    frame = every_reason()
    in_memory = apply_filters(frame, FilterConfig())
    streamed = filter_run(write_run(tmp_path, frame), FilterConfig())
    assert all(in_memory.report["dropped"][reason] >= 1 for reason in REASONS)
    assert pl.read_parquet(streamed.kept).equals(in_memory.kept)
    assert pl.read_parquet(streamed.dropped).equals(in_memory.dropped)
    assert streamed.report == in_memory.report
    assert json.loads((tmp_path / "run" / "filter_report.json").read_text())["dropped"] == in_memory.report["dropped"]


def test_near_duplicate_clusters_are_the_same_when_prompts_repeat_across_many_pairs(tmp_path):
    base = [pair(10 * p + k, prompt_id=f"prompt-{p:03d}", prompt=prompt_text(p)) for p in range(12) for k in range(5)]
    echoes = [pair(500 + 10 * p + k, prompt_id=f"prompt-{100 + p:03d}", prompt=paraphrase(prompt_text(p)))
              for p in range(0, 12, 3) for k in range(3)]
    frame = judged(*base, *echoes)
    in_memory = apply_filters(frame, FilterConfig())
    streamed = filter_run(write_run(tmp_path, frame), FilterConfig())
    dropped = pl.read_parquet(streamed.dropped)
    assert dropped.equals(in_memory.dropped)
    assert set(dropped["drop_detail"]) == {f"near-duplicate of prompt prompt-{p:03d}" for p in range(0, 12, 3)}
    assert dropped.height == len(echoes)
    assert streamed.report["diversity"] == in_memory.report["diversity"]
    assert streamed.report["diversity"]["near_duplicate_clusters"] == 4


def test_near_duplicates_do_not_depend_on_the_batch_size():
    rows = pl.DataFrame({
        "prompt_id": [f"p{i:03d}" for i in range(60)] + [f"q{i:03d}" for i in range(0, 60, 4)],
        "prompt": [prompt_text(i) for i in range(60)] + [paraphrase(prompt_text(i)) for i in range(0, 60, 4)],
    })
    whole = drop_near_duplicate_prompts(rows, FilterConfig(), batch_size=1_000)
    for batch_size in (1, 7):
        duplicates, diversity = drop_near_duplicate_prompts(rows, FilterConfig(), batch_size=batch_size)
        assert duplicates.equals(whole[0]) and diversity == whole[1]
    assert whole[0].height == 15


# --- a run larger than the memory a process may use ----------------------------------------------------

HEADROOM_MB = 1_000  # address space the child may use above what its interpreter and libraries reserve
ROWS = 70_000  # ~1.4 GB of judged pairs once in memory (the streaming pass needs ~0.6 GB above its libraries)


def big_run(folder, rows: int):
    """A run directory of `rows` distinct pairs over rows/3 prompts (its pairs table: the same rows)."""
    words = " ".join(prompt_text(k, 80) for k in range(16))  # ~3.8 kB
    prompts = pl.Series([prompt_text(p) for p in range(rows // 3 + 1)])
    template = judged(pair(0)).with_columns(pl.lit("1").alias("response_b_id"), pl.lit(1).alias("rounds"))
    row = pl.int_range(rows, dtype=pl.Int64).alias("row")
    frame = template.select(pl.all().gather(pl.zeros(rows, dtype=pl.UInt32))).with_columns(row).with_columns(
        pl.format("pair-{}", "row").alias("pair_id"),
        pl.format("prompt-{}", pl.col("row") // 3).alias("prompt_id"),
        pl.lit(prompts).gather(pl.col("row") // 3).alias("prompt"),
        pl.format("{} original {}", pl.lit(words), "row").alias("response_a"),
        pl.format("{} revised {}", pl.lit(words), "row").alias("response_b"),
        pl.format("rev-{}", "row").alias("response_b_id"),
    ).with_columns(pl.col("response_b").alias("chosen"), pl.col("response_a").alias("rejected")).drop("row")
    folder.mkdir()
    frame.write_parquet(folder / "judged.parquet", row_group_size=2_000)
    frame.write_parquet(folder / "pairs.parquet", row_group_size=2_000)
    (folder / "manifest.json").write_text(json.dumps({"recipe": {"filter": {}, "export": {}}}))
    return folder, frame.estimated_size("mb")


FILTER_AND_EXPORT = """
import polars as pl
from engine.export import export_run
from engine.filters import filter_run
filter_run('{run}')
export_run('{run}')
print([line for line in open('/proc/self/status') if line.startswith('VmPeak')][0].split()[1])
"""


def run_child(code: str, limit_mb: int | None = None) -> subprocess.CompletedProcess:
    """Run Python code in a child process, its address space capped at limit_mb if given."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_mb * 2**20, limit_mb * 2**20))

    env = {"PYTHONPATH": str(REPO), "POLARS_MAX_THREADS": "2", "MALLOC_ARENA_MAX": "2", "HF_DATASETS_OFFLINE": "1",
           "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", code], preexec_fn=cap if limit_mb else None, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_a_run_larger_than_the_memory_limit_still_filters_and_exports(tmp_path):
    from datasets import load_from_disk

    small, _ = big_run(tmp_path / "small", 300)
    baseline = run_child(FILTER_AND_EXPORT.format(run=small))  # what the libraries reserve: threads, arenas
    assert baseline.returncode == 0, baseline.stderr[-3000:]
    limit_mb = int(baseline.stdout.split()[-1]) // 1024 + HEADROOM_MB
    run, table_mb = big_run(tmp_path / "big", ROWS)
    assert table_mb > HEADROOM_MB
    # the limit bites: after the same work on the small run (same libraries loaded), the table cannot be held whole
    whole = run_child(FILTER_AND_EXPORT.format(run=small) + f"pl.read_parquet('{run}/judged.parquet')", limit_mb)
    assert whole.returncode != 0 and "judged.parquet" not in whole.stdout
    streamed = run_child(FILTER_AND_EXPORT.format(run=run), limit_mb)
    assert streamed.returncode == 0, streamed.stderr[-3000:]
    pairs = load_from_disk(str(run / "export" / "dataset"))
    sft = load_from_disk(str(run / "export" / "sft" / "dataset"))
    assert pairs["train"].num_rows + pairs["test"].num_rows == ROWS
    assert sft["train"].num_rows + sft["test"].num_rows == ROWS
