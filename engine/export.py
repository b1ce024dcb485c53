"""Export kept pairs as a Hugging Face dataset in TRL's conversational preference format, with a card.

Layout of an export folder (written to a temporary sibling and renamed into place, so it is whole or absent):
    TO/dataset/                  DatasetDict.save_to_disk (train/test): load with datasets.load_from_disk
    TO/parquet/{split}.parquet   the same rows: load_dataset("parquet", data_files=...)
    TO/sft/dataset, TO/sft/parquet/{split}.parquet   SL-CAI SFT data: prompt -> final revision (`messages`)
    TO/README.md                 dataset card: HF YAML header, how it was made, recipe, filter report

A record is `prompt` = [{"role": "user", ...}], `chosen`/`rejected` = [{"role": "assistant", ...}] plus
provenance; its published schema is engine/schemas/pair.schema.json. Every exported record is validated
here with jsonschema (the filters already enforce the same schema as Polars expressions, so a failure here
is a bug and stops the export). Train/test are split by prompt, seeded, so no prompt is in both.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import numpy as np
import polars as pl

from engine.config import ExportConfig
from engine.dataset_card import dataset_card
from engine.errors import CharterError
from engine.record_schema import pair_records, validate_records

SPLITS = ("train", "test")
MAX_SHARD_BYTES = 500 * 2**20  # datasets' own default shard size


def split_by_prompt(records: pl.DataFrame, test_size: float, seed: int, row_id: str = "pair_id") -> dict[str, pl.DataFrame]:
    """Seeded train/test split over prompts (over rows, by `row_id`, if there is only one prompt);
    test >= 1 row given >= 2."""
    key = "prompt_id" if records["prompt_id"].n_unique() >= 2 else row_id
    groups = records[key].unique().sort()
    n = len(groups)
    n_test = 0 if test_size <= 0 or n < 2 else min(n - 1, max(1, round(test_size * n)))
    test_keys = groups.gather(np.random.default_rng(seed).permutation(n)[:n_test])
    is_test = pl.col(key).is_in(test_keys.implode())
    return {"train": records.filter(~is_test), "test": records.filter(is_test)}


def export_dataset(
    kept: pl.DataFrame, report: dict, manifest: dict, out_dir: str | Path, test_size: float = 0.1, seed: int = 0,
    *, sft_counts: dict[str, int] | None = None,
):
    """Write kept pairs as a DatasetDict (save_to_disk + Parquet) and the dataset card into out_dir."""
    out = Path(out_dir)
    records = pair_records(kept)
    validate_records(records)
    dataset = _write_splits(split_by_prompt(records, test_size, seed), out)
    counts = {name: dataset[name].num_rows for name in SPLITS}
    judges = sorted(set(records["judge_model"].drop_nulls())) if records.height else []
    (out / "README.md").write_text(dataset_card(counts, report, manifest, judges, sft_counts))
    return dataset


def sft_records(pairs: pl.DataFrame, drop_truncated: bool = True) -> pl.DataFrame:
    """SL-CAI SFT rows from the pairs table: [user prompt, assistant final revision], empty/truncated ones left out."""
    revision = pl.col("response_b")
    usable = (pl.col("pair_kind") == "original-vs-revision") & (revision.str.strip_chars().str.len_chars() > 0)
    if drop_truncated:
        usable &= pl.col("response_b_finish_reason").fill_null("") != "length"
    messages = pl.concat_list(
        pl.struct(pl.lit("user").alias("role"), pl.col("prompt").alias("content")),
        pl.struct(pl.lit("assistant").alias("role"), revision.alias("content")),
    )
    return pairs.lazy().filter(usable).select(
        messages.alias("messages"), "prompt_id", pl.col("response_b_id").alias("revision_id"),
        pl.col("principle_ids").alias("critique_principle_ids"), "rounds", "constitution_version",
        "constitution_sha256", "model",
    ).collect()


def export_sft(pairs: pl.DataFrame, out_dir: str | Path, test_size: float = 0.1, seed: int = 0, drop_truncated: bool = True):
    """Write SL-CAI SFT data into out_dir/sft (save_to_disk + Parquet)."""
    records = sft_records(pairs, drop_truncated)
    return _write_splits(split_by_prompt(records, test_size, seed, row_id="revision_id"), Path(out_dir) / "sft")


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
            sft = export_sft(store.read("pairs"), tmp, cfg.test_size, cfg.seed, drop_truncated)
            sft_counts = {name: sft[name].num_rows for name in SPLITS}
        export_dataset(store.read("kept"), report, manifest, tmp, cfg.test_size, cfg.seed, sft_counts=sft_counts)
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


def _write_splits(splits: dict[str, pl.DataFrame], folder: Path):
    """save_to_disk(folder/dataset) and folder/parquet/{split}.parquet, with plain Arrow types (not Polars' large_*)."""
    import pyarrow.parquet as pq
    from datasets import Dataset, DatasetDict

    tables = {name: _plain_arrow(frame.to_arrow()) for name, frame in splits.items()}
    dataset = DatasetDict({name: Dataset(table) for name, table in tables.items()})
    # datasets writes no shard for an empty split and then cannot load it: every split gets at least one
    shards = {name: max(1, math.ceil(table.nbytes / MAX_SHARD_BYTES)) for name, table in tables.items()}
    dataset.save_to_disk(str(folder / "dataset"), num_shards=shards)
    (folder / "parquet").mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        pq.write_table(table, folder / "parquet" / f"{name}.parquet")
    return dataset


def _plain_arrow(table):
    import pyarrow as pa

    def plain(t: pa.DataType) -> pa.DataType:
        if pa.types.is_large_string(t) or pa.types.is_string_view(t):
            return pa.string()
        if pa.types.is_large_list(t) or pa.types.is_list(t):
            return pa.list_(plain(t.value_type))
        if pa.types.is_struct(t):
            return pa.struct([pa.field(f.name, plain(f.type)) for f in t])
        return t

    return table.cast(pa.schema([pa.field(f.name, plain(f.type)) for f in table.schema]))


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
