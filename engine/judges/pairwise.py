"""Pairwise judging (RL-CAI): the comparison question with both responses as options A and B.

For each pair, k comparison principles are sampled (seeded by the pair) and each is asked in both
orders, (A=a, B=b) and (A=b, B=a). A vote is `p_first` = softmax over the two option tokens' logprobs
(one scored token, no text parsing). Aggregation happens in the pair's own orientation, via
`p_a` = P(response_a is better): order ab gives p_first, order ba gives 1 - p_first.
Optional chain of thought: the judge writes its reasoning first; the option token is scored after it.
"""

from __future__ import annotations

import math

import polars as pl

from engine.backends import Backend, GenerationRequest, ScoreRequest
from engine.config import JudgeConfig
from engine.constitution import Constitution
from engine.judges import pair_aggregate, pair_principles
from engine.judges.prompt import ANSWER_PREFIX, COT_ANSWER, judge_messages, judge_template, render_conversation
from engine.keys import derived_seed

ORDERS = ("ab", "ba")
VOTE_SCHEMA = {"pair_id": pl.String, "principle_id": pl.String, "order": pl.String, "p_first": pl.Float64, "error": pl.String}


def p_first(logprobs: tuple[float, ...]) -> float:
    """Softmax over the two option tokens only."""
    top = max(logprobs)
    weights = [math.exp(lp - top) for lp in logprobs]
    return weights[0] / sum(weights)


def collect_votes(items: pl.DataFrame, backend: Backend, cfg: JudgeConfig, constitution: Constitution, seed: int) -> pl.DataFrame:
    """Every (pair, principle, order) vote, as a long table; unscorable votes carry an error instead."""
    template = judge_template(constitution.judge, backend)
    conversations = items["conversation"].to_list() if "conversation" in items.columns else [None] * items.height
    keys, requests = [], []
    plans = pair_principles(items, constitution, cfg.principles, seed)
    for pair_id, prompt, a, b, conv, principles in zip(items["pair_id"], items["prompt"], items["response_a"], items["response_b"],
                                                       conversations, plans):
        conversation = render_conversation(prompt, conv)
        for principle in principles:
            for order in ORDERS:
                first, second = (a, b) if order == "ab" else (b, a)
                keys.append((pair_id, principle.id, order))
                requests.append(judge_messages(template, conversation, principle.comparison, first, second, cfg.cot))
    prefixes = _cot_prefixes(requests, keys, backend, cfg, seed) if cfg.cot else [ANSWER_PREFIX] * len(requests)
    scores = backend.score_options([ScoreRequest(m, p, template.option_tokens) for m, p in zip(requests, prefixes)])
    probs = [None if s.logprobs is None else p_first(s.logprobs) for s in scores]
    if cfg.cot:
        lo, hi = cfg.cot_clamp
        probs = [None if p is None else min(max(p, lo), hi) for p in probs]
    return pl.DataFrame(
        {
            "pair_id": [k[0] for k in keys],
            "principle_id": [k[1] for k in keys],
            "order": [k[2] for k in keys],
            "p_first": probs,
            "error": [s.error for s in scores],
        },
        schema=VOTE_SCHEMA,
    )


def _cot_prefixes(requests, keys, backend: Backend, cfg: JudgeConfig, seed: int) -> list[str]:
    """Chain-of-thought: the judge writes its reasoning; the option token is scored after it."""
    reasoning = backend.generate(
        [GenerationRequest(m, cfg.cot_sampling, derived_seed(seed, *k)) for m, k in zip(requests, keys)]
    )
    return [f"{r.text.strip()}{COT_ANSWER}" for r in reasoning]


def aggregate(votes: pl.DataFrame) -> pl.DataFrame:
    """Per pair, in its own orientation: p_a, swap consistency, principle agreement (Polars only)."""
    p_a = pl.when(pl.col("order") == "ab").then(pl.col("p_first")).otherwise(1 - pl.col("p_first"))
    per_principle = (
        votes.lazy()
        .filter(pl.col("p_first").is_not_null())
        .with_columns(p_a.alias("p_a"))
        .group_by("pair_id", "principle_id")
        .agg(
            pl.col("p_a").mean(),
            pl.len().alias("n"),
            # Both orders prefer the same response: both p_a above 0.5, or both below.
            ((pl.col("p_a") > 0.5).all() | (pl.col("p_a") < 0.5).all()).alias("consistent"),
        )
        .filter(pl.col("n") == 2)  # a principle counts only when both of its orders were scored
    )
    return pair_aggregate(per_principle)


class PairwiseJudge:
    """`judge.mode: pairwise`: A/B comparison in both orders (the CAI paper's RL-CAI labels)."""

    name = "pairwise"

    def label(self, cfg: JudgeConfig) -> str:
        return "cot" if cfg.cot else "logprob"

    def vote_inputs(self, constitution: Constitution, principle) -> tuple:
        """A vote reads the principle's comparison question and the constitution's judge section (template, labels, shots)."""
        return principle.comparison, constitution.judge

    def votes(self, items: pl.DataFrame, backend: Backend, cfg: JudgeConfig, constitution: Constitution, seed: int) -> pl.DataFrame:
        return collect_votes(items, backend, cfg, constitution, seed)

    def aggregate(self, votes: pl.DataFrame) -> pl.DataFrame:
        return aggregate(votes)


PAIRWISE = PairwiseJudge()
