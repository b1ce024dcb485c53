"""Stages: each turns input tables into one output table, as a pure function of rows + config.

Every stage module exposes `from_recipe(recipe, ctx)`, which returns a stage object (or None when the
recipe leaves the stage out). A stage object has the same shape for every stage:
    table, id_column   its output table and that table's unique id column
    backend_role       "policy", "judge" or None: which model it needs, if any
    config_hash        computed once, from its config, model and constitution
    plan(tables)       -> one work item per unit with a `row_key`, from the tables made so far
    run(items, backend) -> the output rows for those items
The runner (engine/runner.py) walks `STAGES` in order and skips items whose `row_key` is already
stored; stages never call each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import polars as pl

from engine.backends import Backend, Completion, GenerationRequest, overflowed
from engine.constitution import Constitution


@dataclass(frozen=True)
class StageContext:
    """What every stage row is stamped with: which model, backend and constitution made it."""

    model: str  # as named in the recipe (short name or path)
    backend: str
    seed: int
    constitution: Constitution

    def provenance(self, config_hash: str) -> list[pl.Expr]:
        return [
            pl.lit(self.model).alias("model"),
            pl.lit(self.backend).alias("backend"),
            pl.lit(config_hash).alias("config_hash"),
            pl.lit(self.constitution.version).alias("constitution_version"),
            pl.lit(self.constitution.sha256).alias("constitution_sha256"),
        ]


def usable(table: pl.DataFrame) -> pl.DataFrame:
    """The rows a later stage may build on: those stored without a `skip_reason` (e.g. a context overflow)."""
    if "skip_reason" not in table.columns:  # tables written before skips existed
        return table
    return table.filter(pl.col("skip_reason").is_null())


def generate_some(backend: Backend, requests: list[GenerationRequest | None], reasons: list[str | None]) -> list[Completion]:
    """Generate for the requests given; a None request (its row already skipped) gets its reason as error."""
    todo = [i for i, r in enumerate(requests) if r is not None]
    done = dict(zip(todo, backend.generate([requests[i] for i in todo]) if todo else []))
    return [done[i] if i in done else overflowed(0, reasons[i] or "skipped") for i in range(len(requests))]


class Stage(Protocol):
    table: str
    id_column: str
    backend_role: str | None
    config_hash: str

    def plan(self, tables: dict[str, pl.DataFrame]) -> pl.DataFrame: ...

    def run(self, items: pl.DataFrame, backend: Backend | None) -> pl.DataFrame: ...
