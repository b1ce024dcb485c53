"""Load a prompt file into the prompts table: `prompt_id` (hash of the text), `prompt`, `source`."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from engine.config import PromptSource
from engine.errors import CharterError
from engine.keys import stable_hash

READERS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


def _read(path: Path) -> pl.DataFrame:
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise CharterError(f"{path}: unsupported prompt file type; use one of {', '.join(sorted(READERS))}")
    try:
        if kind == "jsonl":
            _check_json_lines(path)
            return pl.read_ndjson(path, infer_schema_length=None)
        if kind == "json":
            data = json.loads(path.read_text())
            if not isinstance(data, list):
                raise CharterError(f"{path}: expected a JSON list of objects")
            return pl.DataFrame(data, infer_schema_length=None)
        if kind == "csv":
            return pl.read_csv(path, infer_schema_length=0)
        return pl.read_parquet(path)
    except CharterError:
        raise
    except Exception as exc:  # polars/pyarrow parse errors: say which file
        raise CharterError(f"{path}: cannot read prompts: {exc}") from None


def _check_json_lines(path: Path) -> None:
    """Name the first line of a JSONL file that is not a JSON object (polars' own error has no line number)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CharterError(f"{path}: line {n}: invalid JSON ({exc.msg} at character {exc.pos})") from None
            if not isinstance(row, dict):
                raise CharterError(f"{path}: line {n}: expected a JSON object, got {type(row).__name__}")


def load_prompts(spec: PromptSource) -> pl.DataFrame:
    """Read, check and deduplicate prompts; errors name the file, the column or the row."""
    path = Path(spec.path)
    if not path.is_file():
        raise CharterError(f"{path}: prompt file not found (prompts.path)")
    frame = _read(path)
    if frame.height == 0:
        raise CharterError(f"{path}: prompt file is empty")
    if spec.column not in frame.columns:
        raise CharterError(
            f"{path}: no column {spec.column!r} (prompts.column); columns are: {', '.join(frame.columns)}"
        )
    if frame.schema[spec.column] != pl.String:
        raise CharterError(f"{path}: column {spec.column!r} must hold text, found {frame.schema[spec.column]}")
    texts = frame.get_column(spec.column).str.strip_chars()
    bad = (texts.is_null() | (texts == "")).arg_true()
    if len(bad):
        raise CharterError(f"{path}: row {bad[0] + 1}: empty prompt in column {spec.column!r} ({len(bad)} such rows)")
    prompts = (
        pl.DataFrame({"prompt": texts})
        .with_columns(
            pl.col("prompt").map_elements(lambda t: stable_hash("prompt", t), return_dtype=pl.String).alias("prompt_id"),
            pl.lit(spec.source or path.name).alias("source"),
        )
        .unique(subset="prompt_id", keep="first", maintain_order=True)
        .select("prompt_id", "prompt", "source")
    )
    return prompts.head(spec.limit) if spec.limit else prompts
