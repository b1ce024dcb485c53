"""A Hugging Face DatasetDict written batch by batch, so an export never holds a split in memory.

What it writes is what `DatasetDict.save_to_disk` writes (and `datasets.load_from_disk` reads), plus one
Parquet file per split:
    FOLDER/dataset/dataset_dict.json                         {"splits": [...]}
    FOLDER/dataset/{split}/data-00000-of-0000N.arrow         Arrow streams of <= MAX_SHARD_BYTES each, >= 1 per split
    FOLDER/dataset/{split}/dataset_info.json, state.json     the features; the shard list
    FOLDER/parquet/{split}.parquet                           the same rows, for load_dataset("parquet", ...)
Columns get plain Arrow types (string, list), not Polars' large_string/string_view, in both.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

MAX_SHARD_BYTES = 500 * 2**20  # datasets' own default shard size


class DatasetDictWriter:
    """Appends Polars batches to the splits of one DatasetDict on disk; `close` finishes it and counts rows."""

    def __init__(self, folder: Path, splits: tuple[str, ...], schema: pl.Schema):
        from datasets import Features

        self.folder = folder
        self.schema = plain_arrow_schema(pl.DataFrame(schema=schema).to_arrow().schema)
        features = Features.from_arrow_schema(self.schema)
        self.splits = {name: _SplitWriter(folder, name, self.schema, features) for name in splits}

    def write(self, split: str, rows: pl.DataFrame) -> None:
        if rows.height:
            self.splits[split].write(rows.to_arrow().cast(self.schema))

    def close(self) -> dict[str, int]:
        counts = {name: split.close() for name, split in self.splits.items()}
        (self.folder / "dataset" / "dataset_dict.json").write_text(json.dumps({"splits": list(self.splits)}))
        return counts


class _SplitWriter:
    """One split: Arrow shards rolled over at MAX_SHARD_BYTES (named with their count once it is known) and a
    Parquet file."""

    def __init__(self, folder: Path, name: str, schema: pa.Schema, features):
        self.folder, self.schema, self.features = folder / "dataset" / name, schema, features
        self.folder.mkdir(parents=True, exist_ok=True)
        (folder / "parquet").mkdir(parents=True, exist_ok=True)
        self.parquet = pq.ParquetWriter(folder / "parquet" / f"{name}.parquet", schema)
        self.shards: list[Path] = []
        self.shard, self.shard_bytes, self.rows = None, 0, 0
        self._next_shard()

    def _next_shard(self) -> None:
        from datasets.arrow_writer import ArrowWriter

        if self.shard is not None:
            self.shard.finalize()
        self.shards.append(self.folder / f"data-{len(self.shards):05d}.arrow")
        self.shard, self.shard_bytes = ArrowWriter(features=self.features, path=str(self.shards[-1])), 0

    def write(self, table: pa.Table) -> None:
        if self.shard_bytes and self.shard_bytes + table.nbytes > MAX_SHARD_BYTES:
            self._next_shard()
        self.shard.write_table(table)
        self.parquet.write_table(table)
        self.shard_bytes += table.nbytes
        self.rows += table.num_rows

    def close(self) -> int:
        from datasets import DatasetInfo
        from datasets.fingerprint import generate_random_fingerprint

        self.shard.finalize()  # an empty split still gets its one (empty) shard: datasets cannot load none
        self.parquet.close()
        names = [f"data-{i:05d}-of-{len(self.shards):05d}.arrow" for i in range(len(self.shards))]
        for shard, name in zip(self.shards, names):
            shard.rename(self.folder / name)
        state = {"_data_files": [{"filename": name} for name in names], "_fingerprint": generate_random_fingerprint(),
                 "_format_columns": None, "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False,
                 "_split": None}
        (self.folder / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))
        DatasetInfo(features=self.features).write_to_directory(str(self.folder))
        return self.rows


def plain_arrow_schema(schema: pa.Schema) -> pa.Schema:
    """The schema with string and list types in place of Polars' large_string, string_view and large_list."""
    def plain(t: pa.DataType) -> pa.DataType:
        if pa.types.is_large_string(t) or pa.types.is_string_view(t):
            return pa.string()
        if pa.types.is_large_list(t) or pa.types.is_list(t):
            return pa.list_(plain(t.value_type))
        if pa.types.is_struct(t):
            return pa.struct([pa.field(f.name, plain(f.type)) for f in t])
        return t

    return pa.schema([pa.field(f.name, plain(f.type)) for f in schema])
