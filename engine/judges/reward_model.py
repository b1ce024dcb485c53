"""Reward-model judging: a sequence-classification model scores each response; no principles, no orders.

`judge.mode: reward_model` with `judge.model: DIR` (for example what `charter train reward` wrote) and
the `reward_model` backend. Each side gets one reward r; p_a = sigmoid(r_a - r_b). This is how round-2
labels come from a reward model trained on round-1 labels (data/recipes/iterate.yaml). Swap consistency
and principle agreement do not apply and are stored as null; `principle_ids` is empty.
"""

from __future__ import annotations

import polars as pl

from engine.backends import Backend
from engine.config import JudgeConfig
from engine.constitution import Constitution
from engine.conversation import messages_for
from engine.errors import CharterError

VOTE_SCHEMA = {"pair_id": pl.String, "principle_id": pl.String, "side": pl.String, "score": pl.Float64, "error": pl.String}


class RewardModelJudge:
    """`judge.mode: reward_model`: p_a = sigmoid(reward(a) - reward(b))."""

    name = "reward_model"
    backend_kind = "reward_model"  # the judge backend when judge.backend is not given
    needs_model = True  # judge.model must name the reward model's folder

    def label(self, cfg: JudgeConfig) -> str:
        return "reward_model"

    def vote_inputs(self, constitution: Constitution, principle) -> tuple:
        """The reward model reads no principle text: a constitution edit changes none of its votes."""
        return ()

    def votes(self, items: pl.DataFrame, backend: Backend, cfg: JudgeConfig, constitution: Constitution, seed: int) -> pl.DataFrame:
        if not hasattr(backend, "score_replies"):
            raise CharterError(f"judge.mode reward_model needs the reward_model backend, not {backend.name!r}")
        conversations = items["conversation"].to_list() if "conversation" in items.columns else [None] * items.height
        turns = [conv or list(messages_for(p)) for conv, p in zip(conversations, items["prompt"])]
        n = items.height
        rewards = backend.score_replies(turns + turns, items["response_a"].to_list() + items["response_b"].to_list())
        return pl.DataFrame(
            {"pair_id": items["pair_id"].to_list() * 2, "principle_id": [None] * (2 * n), "side": ["a"] * n + ["b"] * n,
             "score": rewards, "error": [None] * (2 * n)},
            schema=VOTE_SCHEMA,
        )

    def aggregate(self, votes: pl.DataFrame) -> pl.DataFrame:
        wide = votes.group_by("pair_id").agg(
            pl.col("score").filter(pl.col("side") == "a").first().alias("r_a"),
            pl.col("score").filter(pl.col("side") == "b").first().alias("r_b"),
        )
        return wide.select(
            "pair_id",
            (1 / (1 + (pl.col("r_b") - pl.col("r_a")).exp())).alias("p_a"),
            pl.lit(None, dtype=pl.Boolean).alias("swap_consistent"),
            pl.lit(None, dtype=pl.Float64).alias("swap_consistency"),
            pl.lit(None, dtype=pl.Float64).alias("principle_agreement"),
            pl.lit(0, dtype=pl.UInt32).alias("n_principles_scored"),
        )


REWARD_MODEL = RewardModelJudge()
