"""pairs: candidate preference pairs, the original response vs its final revision.

No orientation is assumed here: the judge decides which side is chosen.
"""

from __future__ import annotations

import polars as pl

from engine.config import Recipe
from engine.keys import stable_hash
from engine.stages import StageContext, usable
from engine.store import KEY

KIND = "original-vs-revision"


class Pairs:
    table, id_column, backend_role = "pairs", "pair_id", None
    chunk_size = 10_000  # no model calls: large shards

    def __init__(self, ctx: StageContext):
        self.ctx = ctx
        self.config_hash = stable_hash("pairs", KIND, ctx.constitution.sha256)

    def plan(self, tables: dict[str, pl.DataFrame]) -> pl.DataFrame:
        return plan(usable(tables["responses"]), usable(tables["revisions"]))

    def run(self, items: pl.DataFrame, backend: None = None) -> pl.DataFrame:
        return run(items).with_columns(*self.ctx.provenance(self.config_hash))


def from_recipe(recipe: Recipe, ctx: StageContext) -> Pairs:
    return Pairs(ctx)


def plan(responses: pl.DataFrame, revisions: pl.DataFrame) -> pl.DataFrame:
    final = (
        revisions.sort("round")
        .group_by("response_id", maintain_order=True)
        .agg(
            pl.col("revision_id").last(),
            pl.col("revision").last(),
            pl.col("revision_finish_reason").last(),
            pl.col("principle_id").alias("principle_ids"),
            pl.col("round").max().alias("rounds"),
        )
    )
    items = responses.select("prompt_id", "prompt", "response_id", "response", "finish_reason").join(
        final, on="response_id", how="inner", maintain_order="left"
    )
    keys = [stable_hash(KIND, a, b) for a, b in zip(items["response_id"], items["revision_id"])]
    return items.with_columns(pl.Series(KEY, keys))


def run(items: pl.DataFrame) -> pl.DataFrame:
    return items.select(
        KEY,
        pl.col(KEY).alias(Pairs.id_column),
        "prompt_id",
        "prompt",
        pl.lit(KIND).alias("pair_kind"),
        pl.col("response_id").alias("response_a_id"),
        pl.col("response").alias("response_a"),
        pl.col("finish_reason").alias("response_a_finish_reason"),
        pl.col("revision_id").alias("response_b_id"),
        pl.col("revision").alias("response_b"),
        pl.col("revision_finish_reason").alias("response_b_finish_reason"),
        "principle_ids",
        "rounds",
    )
