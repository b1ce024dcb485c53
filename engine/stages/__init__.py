"""Stages: each turns one input table into one output table, as a pure function of rows + config.

A stage module exposes `TABLE` (its output name), `ID` (the unique id column of its rows),
`plan(...)` -> one work item per unit with a `row_key`, and `run(items, ...)` -> output rows for
those items. The runner skips items whose `row_key` is already stored; stages never call each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

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
