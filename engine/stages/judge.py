"""judge (RL-CAI): label each candidate pair with the recipe's judge method (engine/judges).

The method (`judge.mode`) turns pairs into votes and votes into `p_a` = P(response_a is better); the
pair is then oriented so `chosen` is the side the judge prefers. Every row records the judge model,
backend, mode, config hash and constitution.
"""

from __future__ import annotations

import polars as pl

from engine.backends import UNAVAILABLE, Backend
from engine.config import JudgeConfig, Recipe
from engine.judges import judge_method, judge_pairs
from engine.keys import stable_hash
from engine.stages import StageContext
from engine.store import KEY


class Judge:
    table, id_column, backend_role = "judged", "pair_id", "judge"

    def __init__(self, cfg: JudgeConfig, judge_model: str, judge_backend: str, ctx: StageContext):
        self.cfg, self.ctx = cfg, ctx
        self.method = judge_method(cfg.mode)
        self.config_hash = stable_hash("judge", cfg.hash_fields(), judge_model, judge_backend, ctx.seed, ctx.constitution.sha256)

    def plan(self, tables: dict[str, pl.DataFrame]) -> pl.DataFrame:
        pairs = tables["pairs"]
        return pairs.with_columns(pl.Series(KEY, [stable_hash(pid, self.config_hash) for pid in pairs["pair_id"]], dtype=pl.String))

    def run(self, items: pl.DataFrame, backend: Backend) -> pl.DataFrame:
        judged = judge_pairs(items, backend, self.cfg, self.ctx.constitution, self.ctx.seed)
        vote_errors = pl.col("votes").list.eval(pl.element().struct.field("error").filter(
            pl.element().struct.field("error").str.starts_with(UNAVAILABLE)))
        return judged.with_columns(
            vote_errors.list.first().alias("error"),  # set: not stored, judged again on the next run
            pl.lit(backend.model_id).alias("judge_model"),
            pl.lit(backend.name).alias("judge_backend"),
            pl.lit(self.method.label(self.cfg)).alias("judge_mode"),
            pl.lit(self.config_hash).alias("judge_config_hash"),
            pl.lit(self.ctx.constitution.version).alias("constitution_version"),
            pl.lit(self.ctx.constitution.sha256).alias("constitution_sha256"),
        )


def from_recipe(recipe: Recipe, ctx: StageContext) -> Judge | None:
    if recipe.judge is None:
        return None
    kind = recipe.judge.backend_kind(recipe.backend)
    return Judge(recipe.judge, recipe.judge.model or recipe.model, kind, ctx)
