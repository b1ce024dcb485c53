"""pairs: candidate preference pairs, the original response vs its final revision.

No orientation is assumed here: the judge decides which side is chosen.
"""

from __future__ import annotations

import polars as pl

from engine.keys import stable_hash
from engine.stages import StageContext
from engine.store import KEY

TABLE = "pairs"
ID = "pair_id"
KIND = "original-vs-revision"


def plan(responses: pl.DataFrame, revisions: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
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


def run(items: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
    return items.select(
        KEY,
        pl.col(KEY).alias(ID),
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
    ).with_columns(*ctx.provenance(stable_hash("pairs", KIND, ctx.constitution.sha256)))
