"""judge (RL-CAI): label each candidate pair from the judge's option-token probabilities.

For each pair, k comparison principles are sampled (seeded by the pair) and each is asked in both
orders, (A=a, B=b) and (A=b, B=a). A vote is `p_first` = softmax over the two option tokens' logprobs
(one scored token, no text parsing). Aggregation happens in the pair's own orientation, via
`p_a` = P(response_a is better): order ab gives p_first, order ba gives 1 - p_first. The pair is then
oriented so `chosen` is the side the judge prefers.
"""

from __future__ import annotations

import math
import random

import polars as pl

from engine.backends import Backend, GenerationRequest, ScoreRequest
from engine.config import JudgeConfig
from engine.constitution import Constitution, Principle
from engine.judge_prompt import (
    ANSWER_PREFIX,
    COT_ANSWER,
    injection_suspect,
    judge_messages,
    judge_template,
    render_conversation,
)
from engine.keys import derived_seed, stable_hash
from engine.stages import StageContext
from engine.store import KEY

TABLE = "judged"
ID = "pair_id"
ORDERS = ("ab", "ba")
VOTE_SCHEMA = {"pair_id": pl.String, "principle_id": pl.String, "order": pl.String, "p_first": pl.Float64, "error": pl.String}


def config_hash(cfg: JudgeConfig, judge_model: str, judge_backend: str, ctx: StageContext) -> str:
    return stable_hash("judge", cfg, judge_model, judge_backend, ctx.seed, ctx.constitution.sha256)


def plan(pairs: pl.DataFrame, chash: str) -> pl.DataFrame:
    return pairs.with_columns(pl.Series(KEY, [stable_hash(pid, chash) for pid in pairs["pair_id"]], dtype=pl.String))


def sample_principles(constitution: Constitution, k: int, pair_id: str, seed: int) -> list[Principle]:
    principles = list(constitution.principles)
    if k <= 0 or k >= len(principles):
        return principles
    return random.Random(derived_seed(seed, pair_id, "judge")).sample(principles, k)


def p_first(logprobs: tuple[float, ...]) -> float:
    """Softmax over the two option tokens only."""
    top = max(logprobs)
    weights = [math.exp(lp - top) for lp in logprobs]
    return weights[0] / sum(weights)


def collect_votes(
    items: pl.DataFrame, backend: Backend, cfg: JudgeConfig, constitution: Constitution, seed: int
) -> pl.DataFrame:
    """Every (pair, principle, order) vote, as a long table; unscorable votes carry an error instead."""
    template = judge_template(constitution.judge, backend)
    conversations = items["conversation"].to_list() if "conversation" in items.columns else [None] * items.height
    keys, requests = [], []
    for pair_id, prompt, a, b, conv in zip(items["pair_id"], items["prompt"], items["response_a"], items["response_b"], conversations):
        conversation = render_conversation(prompt, conv)
        for principle in sample_principles(constitution, cfg.principles, pair_id, seed):
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
    side = lambda e: pl.when(e > 0.5).then(1).when(e < 0.5).then(-1).otherwise(0)  # noqa: E731
    return (
        per_principle.with_columns(pl.col("p_a").mean().over("pair_id").alias("pair_p_a"))
        .group_by("pair_id")
        .agg(
            pl.col("pair_p_a").first().alias("p_a"),
            pl.col("consistent").all().alias("swap_consistent"),
            pl.col("consistent").mean().alias("swap_consistency"),
            (side(pl.col("p_a")) == side(pl.col("pair_p_a"))).mean().alias("principle_agreement"),
            pl.len().alias("n_principles_scored"),
        )
        .collect()
    )


def orient(items: pl.DataFrame, votes: pl.DataFrame) -> pl.DataFrame:
    """Join the aggregate onto the pairs and name the preferred side `chosen`."""
    nested = votes.group_by("pair_id", maintain_order=True).agg(
        pl.struct("principle_id", "order", "p_first", "error").alias("votes"),
        pl.col("error").drop_nulls().first().alias("first_error"),
    )
    a_wins = pl.col("p_a") >= 0.5
    return (
        items.join(aggregate(votes), on="pair_id", how="left")
        .join(nested, on="pair_id", how="left")
        .with_columns(
            pl.when(pl.col("p_a").is_null()).then(None).when(a_wins).then(pl.lit("a")).otherwise(pl.lit("b")).alias("chosen_side"),
            pl.when(a_wins).then("response_a").otherwise("response_b").alias("chosen"),
            pl.when(a_wins).then("response_b").otherwise("response_a").alias("rejected"),
            pl.max_horizontal(pl.col("p_a"), 1 - pl.col("p_a")).alias("p_chosen"),
            (pl.col("p_a") - 0.5).abs().alias("margin"),
            pl.when(pl.col("p_a").is_null())
            .then(pl.coalesce(pl.col("first_error"), pl.lit("no principle scored in both orders")))
            .alias("judge_error"),
        )
        .with_columns(
            pl.when(pl.col("chosen_side").is_null()).then(None).otherwise(pl.col("chosen")).alias("chosen"),
            pl.when(pl.col("chosen_side").is_null()).then(None).otherwise(pl.col("rejected")).alias("rejected"),
        )
        .drop("first_error")
    )


def judge_pairs(
    items: pl.DataFrame, backend: Backend, cfg: JudgeConfig, constitution: Constitution, seed: int
) -> pl.DataFrame:
    """Votes, aggregate and orientation for a frame with pair_id, prompt, response_a, response_b."""
    votes = collect_votes(items, backend, cfg, constitution, seed)
    suspects = [injection_suspect(a, b) for a, b in zip(items["response_a"], items["response_b"])]
    return orient(items.with_columns(pl.Series("judge_injection_suspect", suspects, dtype=pl.Boolean)), votes)


def run(items: pl.DataFrame, backend: Backend, cfg: JudgeConfig, ctx: StageContext, chash: str) -> pl.DataFrame:
    judged = judge_pairs(items, backend, cfg, ctx.constitution, ctx.seed)
    return judged.with_columns(
        pl.lit(backend.model_id).alias("judge_model"),
        pl.lit(backend.name).alias("judge_backend"),
        pl.lit("cot" if cfg.cot else "logprob").alias("judge_mode"),
        pl.lit(chash).alias("judge_config_hash"),
        pl.lit(ctx.constitution.version).alias("constitution_version"),
        pl.lit(ctx.constitution.sha256).alias("constitution_sha256"),
    )
