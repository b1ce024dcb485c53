"""Pointwise judging: each response is checked on its own against each sampled principle's yes/no question.

There is no second slot, so there is no position to be biased about. For a pair, k principles are
sampled (seeded by the pair, as in pairwise mode); each response gets the principle's `check`
question, and its score is s = log P(Yes) - log P(No) from the two option tokens (one scored token).
Per principle, P(a better) = sigmoid(s_a - s_b); `p_a` is the mean over principles. Swap consistency
does not apply: it is stored as null, and the filters let such pairs through that check.
"""

from __future__ import annotations


import polars as pl

from engine.backends import Backend, ScoreRequest
from engine.config import JudgeConfig
from engine.constitution import Constitution
from engine.judges import pair_aggregate, pair_principles
from engine.judges.prompt import POINTWISE_LABELS, POINTWISE_PREFIX, option_tokens, pointwise_messages, render_conversation

VOTE_SCHEMA = {"pair_id": pl.String, "principle_id": pl.String, "side": pl.String, "score": pl.Float64, "error": pl.String}


def collect_votes(items: pl.DataFrame, backend: Backend, cfg: JudgeConfig, constitution: Constitution, seed: int) -> pl.DataFrame:
    """One vote per (pair, principle, side): the yes/no log-odds of that response under the principle's check."""
    tokens = option_tokens(POINTWISE_LABELS, backend)
    conversations = items["conversation"].to_list() if "conversation" in items.columns else [None] * items.height
    keys, requests = [], []
    plans = pair_principles(items, constitution, cfg.principles, seed)
    for pair_id, prompt, a, b, conv, principles in zip(items["pair_id"], items["prompt"], items["response_a"], items["response_b"],
                                                       conversations, plans):
        conversation = render_conversation(prompt, conv)
        for side, response in (("a", a), ("b", b)):
            for principle in principles:  # one response's questions in a row: they share its prefix
                keys.append((pair_id, principle.id, side))
                requests.append(ScoreRequest(pointwise_messages(conversation, response, principle.check), POINTWISE_PREFIX, tokens))
    scores = backend.score_options(requests)
    return pl.DataFrame(
        {
            "pair_id": [k[0] for k in keys],
            "principle_id": [k[1] for k in keys],
            "side": [k[2] for k in keys],
            "score": [None if s.logprobs is None else s.logprobs[0] - s.logprobs[1] for s in scores],
            "error": [s.error for s in scores],
        },
        schema=VOTE_SCHEMA,
    )


def aggregate(votes: pl.DataFrame) -> pl.DataFrame:
    """Per pair: p_a = mean over principles of sigmoid(s_a - s_b); agreement as in pairwise; no swap figures."""
    per_principle = (
        votes.lazy()
        .filter(pl.col("score").is_not_null())
        .group_by("pair_id", "principle_id")
        .agg(
            pl.col("score").filter(pl.col("side") == "a").first().alias("s_a"),
            pl.col("score").filter(pl.col("side") == "b").first().alias("s_b"),
        )
        .filter(pl.col("s_a").is_not_null() & pl.col("s_b").is_not_null())  # a principle counts when both sides scored
        .with_columns((1 / (1 + (pl.col("s_b") - pl.col("s_a")).exp())).alias("p_a"))
    )
    return pair_aggregate(per_principle)


class PointwiseJudge:
    """`judge.mode: pointwise`: each response alone, a yes/no check per principle."""

    name = "pointwise"

    def label(self, cfg: JudgeConfig) -> str:
        return "pointwise"

    def vote_inputs(self, constitution: Constitution, principle) -> tuple:
        """A vote reads only the principle's yes/no check (the prompt template is charter's, not the constitution's)."""
        return (principle.check,)

    def votes(self, items: pl.DataFrame, backend: Backend, cfg: JudgeConfig, constitution: Constitution, seed: int) -> pl.DataFrame:
        return collect_votes(items, backend, cfg, constitution, seed)

    def aggregate(self, votes: pl.DataFrame) -> pl.DataFrame:
        return aggregate(votes)


POINTWISE = PointwiseJudge()
