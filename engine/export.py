"""Export kept pairs as a Hugging Face dataset in TRL's conversational preference format, with a card.

Layout of an export folder (written to a temporary sibling and renamed into place, so it is whole or absent):
    TO/dataset/                  the DatasetDict.save_to_disk layout (train/test): load with datasets.load_from_disk
    TO/parquet/{split}.parquet   the same rows: load_dataset("parquet", data_files=...)
    TO/sft/dataset, TO/sft/parquet/{split}.parquet   SL-CAI SFT data: prompt -> final revision (`messages`)
    TO/README.md                 dataset card: HF YAML header, how it was made, recipe, filter report

A record is `prompt` = [{"role": "user", ...}], `chosen`/`rejected` = [{"role": "assistant", ...}] plus
provenance; its published schema is engine/schemas/pair.schema.json. Every exported record is checked here
against it by the Polars expressions compiled from it (the filters already drop what fails them, so a failure
here is a bug and stops the export), and the first records of every batch by jsonschema as well: jsonschema
takes ~0.2 ms a record, minutes for millions. Train/test are split by prompt, seeded, so no prompt is in both.
The kept table streams through in batches (engine/dataset_writer.py): memory does not grow with its rows.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlparse

import numpy as np
import polars as pl

from engine.config import ExportConfig
from engine.dataset_card import dataset_card
from engine.dataset_writer import DatasetDictWriter
from engine.errors import CharterError
from engine.filters import drop_schema_invalid
from engine.parquet_batches import Table, batches, lazy
from engine.record_schema import RECORD_SCHEMA, record_columns, validate_records

SPLITS = ("train", "test")
JSONSCHEMA_ROWS_PER_BATCH = 100  # records of each batch also checked by jsonschema (the Polars checks see all)


def split_by_prompt(rows: pl.LazyFrame, test_size: float, seed: int, row_id: str = "pair_id") -> pl.Expr:
    """True for the rows of the test split: a seeded share of prompts (of rows, by `row_id`, if there is only one
    prompt); test >= 1 row given >= 2. Only the distinct keys are collected, never the rows."""
    key = "prompt_id"
    groups = rows.select(pl.col(key).unique()).collect(engine="streaming")[key]
    if len(groups) < 2:
        key = row_id
        groups = rows.select(pl.col(key).unique()).collect(engine="streaming")[key]
    groups = groups.sort()
    n = len(groups)
    n_test = 0 if test_size <= 0 or n < 2 else min(n - 1, max(1, round(test_size * n)))
    test_keys = groups.gather(np.random.default_rng(seed).permutation(n)[:n_test])
    return pl.col(key).is_in(test_keys.implode())


def export_dataset(
    kept: Table, report: dict, manifest: dict, out_dir: str | Path, test_size: float = 0.1, seed: int = 0,
    *, sft_counts: dict[str, int] | None = None, allow_mixed_constitutions: bool = False,
):
    """write_pairs, then the DatasetDict written, memory-mapped from out_dir/dataset."""
    write_pairs(kept, report, manifest, out_dir, test_size, seed, sft_counts=sft_counts,
                allow_mixed_constitutions=allow_mixed_constitutions)
    return _load(Path(out_dir) / "dataset")


def write_pairs(
    kept: Table, report: dict, manifest: dict, out_dir: str | Path, test_size: float = 0.1, seed: int = 0,
    *, sft_counts: dict[str, int] | None = None, allow_mixed_constitutions: bool = False,
) -> dict[str, int]:
    """Write kept pairs (a DataFrame or a Parquet file) as a DatasetDict (save_to_disk layout + Parquet) and the
    dataset card into out_dir, a batch at a time, checking every record against pair.schema.json; rows per split.
    Pairs labelled under two or more constitutions are refused unless `allow_mixed_constitutions`."""
    out = Path(out_dir)
    constitutions = constitution_counts(kept)
    if len(constitutions) > 1 and not allow_mixed_constitutions:
        listing = "; ".join(f"sha256 {c['sha256']} (version {c['version']}, {c['pairs']} pairs)" for c in constitutions)
        raise CharterError(f"the kept pairs were judged under {len(constitutions)} constitutions: {listing}. A dataset "
                           "should come from one: re-run the recipe under one constitution, or set "
                           "`export: {allow_mixed_constitutions: true}` to publish them together (the card lists each)")
    is_test = split_by_prompt(lazy(kept), test_size, seed)
    problem = drop_schema_invalid(lazy(kept).select(**record_columns()).collect_schema())

    def records(rows: pl.LazyFrame) -> pl.LazyFrame:
        return rows.select(**record_columns(), _test=is_test, _problem=pl.when(problem.drops).then(problem.detail))

    counts = _write_splits(kept, records, out, check=_check_records)
    judges = lazy(kept).select(pl.col("judge_model").drop_nulls().unique().sort()).collect(engine="streaming")
    (out / "README.md").write_text(dataset_card(counts, report, manifest, judges["judge_model"].to_list(), sft_counts,
                                                constitutions=constitutions))
    return counts


def constitution_counts(kept: Table) -> list[dict]:
    """Each constitution the kept pairs were judged under (sha256, version) with its number of pairs, most first."""
    counts = (lazy(kept).group_by("constitution_sha256", "constitution_version").len()
              .sort(["len", "constitution_sha256"], descending=[True, False]).collect(engine="streaming"))
    return [{"sha256": sha, "version": version, "pairs": n} for sha, version, n in counts.iter_rows()]


def sft_records(pairs: pl.LazyFrame, drop_truncated: bool = True) -> pl.LazyFrame:
    """SL-CAI SFT rows from the pairs table: [user prompt, assistant final revision], empty/truncated ones left out."""
    revision = pl.col("response_b")
    usable = (pl.col("pair_kind") == "original-vs-revision") & (revision.str.strip_chars().str.len_chars() > 0)
    if drop_truncated:
        usable &= pl.col("response_b_finish_reason").fill_null("") != "length"
    messages = pl.concat_list(
        pl.struct(pl.lit("user").alias("role"), pl.col("prompt").alias("content")),
        pl.struct(pl.lit("assistant").alias("role"), revision.alias("content")),
    )
    return pairs.filter(usable).select(
        messages.alias("messages"), "prompt_id", pl.col("response_b_id").alias("revision_id"),
        pl.col("principle_ids").alias("critique_principle_ids"), "rounds", "constitution_version",
        "constitution_sha256", "model",
    )


def export_sft(pairs: Table, out_dir: str | Path, test_size: float = 0.1, seed: int = 0, drop_truncated: bool = True):
    """write_sft, then the DatasetDict written, memory-mapped from out_dir/sft/dataset."""
    write_sft(pairs, out_dir, test_size, seed, drop_truncated)
    return _load(Path(out_dir) / "sft" / "dataset")


def write_sft(pairs: Table, out_dir: str | Path, test_size: float = 0.1, seed: int = 0,
              drop_truncated: bool = True) -> dict[str, int]:
    """Write SL-CAI SFT data into out_dir/sft (save_to_disk layout + Parquet), a batch at a time; rows per split."""
    is_test = split_by_prompt(sft_records(lazy(pairs), drop_truncated), test_size, seed, row_id="revision_id")
    return _write_splits(pairs, lambda rows: sft_records(rows, drop_truncated).with_columns(_test=is_test),
                         Path(out_dir) / "sft")


def export_run(run_dir: str | Path, cfg: ExportConfig | None = None, *, to: str | Path | None = None,
               manifest: dict | None = None) -> Path:
    """Export a filtered run (kept.parquet, filter_report.json) to `to`, cfg.to or RUN/export, atomically.

    cfg defaults to the `export:` section of the run's recipe (in its manifest), else to ExportConfig().
    """
    from engine.store import RunStore

    run = Path(run_dir)
    if not (run / "kept.parquet").is_file() or not (run / "filter_report.json").is_file():
        raise CharterError(f"{run}: no kept.parquet/filter_report.json; run `charter filter {run}` first")
    with RunStore(run) as store:
        return _export_locked(store, cfg, to, manifest)


def _export_locked(store, cfg: ExportConfig | None, to: str | Path | None, manifest: dict | None) -> Path:
    from engine.config import export_config

    run = store.root
    manifest = manifest if manifest is not None else store.read_manifest()
    if cfg is None:
        cfg = export_config(manifest.get("recipe", {}).get("export"), str(run / "manifest.json"))
    report = json.loads((run / "filter_report.json").read_text())
    out = Path(to or cfg.to or run / "export")
    with _replacing_dir(out) as tmp:
        sft_counts = None
        if cfg.sft:
            drop_truncated = report.get("config", {}).get("drop_truncated", True)  # as the filters did
            sft_counts = write_sft(store.readable_table("pairs"), tmp, cfg.test_size, cfg.seed, drop_truncated)
        write_pairs(store.readable_table("kept"), report, manifest, tmp, cfg.test_size, cfg.seed, sft_counts=sft_counts,
                    allow_mixed_constitutions=cfg.allow_mixed_constitutions)
    return out


def push_to_hub(export_dir: str | Path, repo: str) -> None:
    """Upload an export with DatasetDict.push_to_hub, then its card. Needs network and a token: untested offline."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in ("", "0", "false", "no", "off"):
        raise CharterError(f"HF_HUB_OFFLINE is set: not pushing to {repo}; unset it (and log in) to push {export_dir}")
    from huggingface_hub import HfApi, constants

    endpoint = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=5).close()
    except OSError as exc:
        raise CharterError(f"cannot reach {constants.ENDPOINT} ({exc}); the export is in {export_dir}, push it later") from None
    from datasets import load_from_disk

    folder = Path(export_dir)
    load_from_disk(str(folder / "dataset")).push_to_hub(repo, data_dir="parquet")
    if (folder / "sft" / "dataset").is_dir():
        load_from_disk(str(folder / "sft" / "dataset")).push_to_hub(repo, config_name="sft", data_dir="sft/parquet")
    HfApi().upload_file(path_or_fileobj=str(folder / "README.md"), path_in_repo="README.md", repo_id=repo, repo_type="dataset")


def _write_splits(table: Table, records: Callable[[pl.LazyFrame], pl.LazyFrame], folder: Path,
                  check: Callable[[pl.DataFrame], None] | None = None) -> dict[str, int]:
    """Write records(rows) of each batch of the table into folder/dataset and folder/parquet. `records` adds
    `_test` (and `_problem`, which `check` reads); columns starting with "_" are not written."""
    schema = records(lazy(table)).collect_schema()
    columns = [name for name in schema if not name.startswith("_")]
    writer = DatasetDictWriter(folder, SPLITS, pl.Schema({name: schema[name] for name in columns}))
    for batch in batches(table):
        rows = records(batch.lazy()).collect()
        if check is not None:
            check(rows)
        test = rows["_test"]
        writer.write("train", rows.filter(~test).select(columns))
        writer.write("test", rows.filter(test).select(columns))
    return writer.close()


def _load(folder: Path):
    """The DatasetDict just written, memory-mapped: nothing is read into memory (export_run does not load it)."""
    from datasets import load_from_disk

    return load_from_disk(str(folder))


def _check_records(batch: pl.DataFrame) -> None:
    """Stop at records that break pair.schema.json: every record by the Polars checks compiled from it, and the
    first records of each batch by jsonschema too (a difference between the two is a bug; tests compare them)."""
    problems = batch["_problem"].drop_nulls().head(5).to_list()
    if problems:
        raise CharterError(f"exported records fail {RECORD_SCHEMA.name} (the schema_invalid filter should have dropped them):\n"
                           + "\n".join(problems))
    validate_records(batch.head(JSONSCHEMA_ROWS_PER_BATCH).select(record_columns().keys()))


@contextmanager
def _replacing_dir(out: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `out`; on success it replaces `out` (only ever a previous export)."""
    if out.exists() and not out.is_dir():
        raise CharterError(f"{out}: is a file; export to a folder")
    if out.exists() and any(out.iterdir()) and not (out / "dataset" / "dataset_dict.json").is_file():
        raise CharterError(f"{out}: exists and is not a charter export; export to a new or empty folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".partial-{out.name}-*"):  # left by a killed export
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".partial-{out.name}-", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".partial-{out.name}-old-", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
