"""Judge methods: how a pair of responses becomes votes, and votes become one label per pair.

A method is a small class registered under the name a recipe gives as `judge.mode`. The judge stage,
`charter judge-eval` and policy evaluation all call `judge_pairs`, which looks the method up; none of
them branches on a mode. A new method is one module plus one `register_judge` line below.

Every method returns the pairs in their own orientation: `p_a` = P(response_a is better), then
`orient` names the preferred side `chosen`.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import polars as pl

from engine.backends import Backend
from engine.constitution import Constitution, Principle
from engine.conversation import CONVERSATION
from engine.keys import derived_seed
from engine.registry import Registry

ITEM_SCHEMA = {"pair_id": pl.String, "prompt": pl.String, "conversation": CONVERSATION,
               "response_a": pl.String, "response_b": pl.String}


class JudgeMethod(Protocol):
    """Turns pairs into a long table of votes, and the votes into the per-pair aggregate."""

    name: str

    def label(self, cfg: Any) -> str:
        """The `judge_mode` stored on every judged row."""
        ...

    def votes(self, items: pl.DataFrame, backend: Backend, cfg: Any, constitution: Constitution, seed: int) -> pl.DataFrame:
        """One row per scored unit (e.g. pair x principle x order), with `pair_id` and `error`."""
        ...

    def aggregate(self, votes: pl.DataFrame) -> pl.DataFrame:
        """Per pair_id: p_a, swap_consistent, swap_consistency, principle_agreement, n_principles_scored."""
        ...


JUDGES = Registry("judge mode")


def register_judge(name: str, target: str | JudgeMethod) -> None:
    """Make `judge.mode: NAME` usable; `target` is a method object or "module:attribute" imported on first use."""
    JUDGES.register(name, target)


def judge_modes() -> tuple[str, ...]:
    return JUDGES.names()


def judge_method(name: str) -> JudgeMethod:
    return JUDGES.get(name)


def judge_items(pair_id: Sequence[str], prompt: Sequence[str], response_a: Sequence[str], response_b: Sequence[str],
                conversation: Sequence[Any] | None = None) -> pl.DataFrame:
    """The judge's input frame, built one way for every caller; `conversation` None: the prompt as one user turn."""
    turns = conversation if conversation is not None else [[{"role": "user", "content": p}] for p in prompt]
    return pl.DataFrame({"pair_id": list(pair_id), "prompt": list(prompt), "conversation": list(turns),
                         "response_a": list(response_a), "response_b": list(response_b)}, schema=ITEM_SCHEMA)


ONLY_PRINCIPLES = "only_principles"  # optional item column: score just these principle ids (constitution impact)


def sample_principles(constitution: Constitution, k: int, pair_id: str, seed: int) -> list[Principle]:
    """k principles per pair, seeded by the pair (the same ones whichever method or batch asks); 0 = all.

    Weighted sampling without replacement (Efraimidis-Spirakis): each principle draws u from a hash of
    (seed, pair, its own id) and the k largest u ** (1 / weight) are taken, largest first (so the first j
    of a pair's k are its sample of j). A principle's draw does not depend on the others, so adding or
    removing one changes a pair's sample only where that one enters or leaves its top k: a constitution
    impact re-scores just those pairs, and their flips are the new principle's doing, not a reshuffle.
    """
    principles = list(constitution.principles)
    if k <= 0 or k >= len(principles):
        return principles

    def key(p: Principle) -> float:
        u = (derived_seed(seed, pair_id, "judge", p.id) + 0.5) / 2**31  # uniform in (0, 1)
        return u ** (1.0 / p.weight)

    return sorted(principles, key=lambda p: (-key(p), p.id))[:k]


def pair_principles(items: pl.DataFrame, constitution: Constitution, k: int, seed: int) -> list[list[Principle]]:
    """The principles each item is scored under: its seeded sample, or, when the items carry an
    `only_principles` list (impact re-scoring just the edited or added ones), exactly those."""
    if ONLY_PRINCIPLES not in items.columns:
        return [sample_principles(constitution, k, pair_id, seed) for pair_id in items["pair_id"]]
    by_id = {p.id: p for p in constitution.principles}
    return [[by_id[i] for i in ids] for ids in items[ONLY_PRINCIPLES].to_list()]


def vote_inputs(method: JudgeMethod, constitution: Constitution, principle: Principle) -> Any:
    """What a vote under `principle` reads from the constitution: two votes with equal inputs (same pair,
    order/side, judge) are the same vote. A method says so with `vote_inputs`; else, conservatively, all of it."""
    own = getattr(method, "vote_inputs", None)
    if own is not None:
        return own(constitution, principle)
    return (principle, constitution.judge, constitution.few_shot)


def pair_aggregate(per_principle: pl.LazyFrame) -> pl.DataFrame:
    """From p_a per (pair_id, principle_id) to each pair's: the mean p_a, the share of principles on the same
    side as it, and, when the method asked both orders (a `consistent` column), swap consistency; else null."""
    side = lambda e: pl.when(e > 0.5).then(1).when(e < 0.5).then(-1).otherwise(0)  # noqa: E731
    if "consistent" in per_principle.collect_schema().names():
        swap = (pl.col("consistent").all(), pl.col("consistent").mean())
    else:
        swap = (pl.lit(None, dtype=pl.Boolean), pl.lit(None, dtype=pl.Float64))
    return (
        per_principle.with_columns(pl.col("p_a").mean().over("pair_id").alias("pair_p_a"))
        .group_by("pair_id")
        .agg(
            pl.col("pair_p_a").first().alias("p_a"),
            swap[0].alias("swap_consistent"),
            swap[1].alias("swap_consistency"),
            (side(pl.col("p_a")) == side(pl.col("pair_p_a"))).mean().alias("principle_agreement"),
            pl.len().alias("n_principles_scored"),
        )
        .collect()
    )


def judge_pairs(items: pl.DataFrame, backend: Backend, cfg: Any, constitution: Constitution, seed: int) -> pl.DataFrame:
    """Votes, aggregate and orientation for a frame with pair_id, prompt, response_a, response_b (+ conversation)."""
    from engine.judges.injection import injection_suspect
    from engine.judges.untrusted import normalise_untrusted

    method = judge_method(cfg.mode)
    votes = method.votes(items, backend, cfg, constitution, seed)
    pairs = list(zip(items["response_a"], items["response_b"]))
    suspects = [injection_suspect(a, b) for a, b in pairs]
    hidden = [normalise_untrusted(a)[1] + normalise_untrusted(b)[1] for a, b in pairs]  # invisible/tag characters removed
    flagged = items.with_columns(pl.Series("judge_injection_suspect", suspects, dtype=pl.Boolean),
                                 pl.Series("judge_hidden_chars", hidden, dtype=pl.Int64))
    return orient(flagged, method.aggregate(votes), votes)


def orient(items: pl.DataFrame, aggregate: pl.DataFrame, votes: pl.DataFrame) -> pl.DataFrame:
    """Join the aggregate (and each pair's votes, nested) onto the pairs and name the preferred side `chosen`."""
    vote_fields = [c for c in votes.columns if c != "pair_id"]
    nested = votes.group_by("pair_id", maintain_order=True).agg(
        pl.struct(*vote_fields).alias("votes"),
        pl.col("error").drop_nulls().first().alias("first_error"),
    )
    a_wins = pl.col("p_a") >= 0.5
    return (
        items.join(aggregate, on="pair_id", how="left")
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


register_judge("pairwise", "engine.judges.pairwise:PAIRWISE")
register_judge("pointwise", "engine.judges.pointwise:POINTWISE")
register_judge("reward_model", "engine.judges.reward_model:REWARD_MODEL")
