"""critique (SL-CAI): per response, rounds of critique -> revision against sampled principles.

Each round samples one principle with an RNG seeded from the row, asks the policy to critique the
current text under it, then to revise; the next round critiques that revision. Output: one row per
(response, round). A response's rounds are written together, so resume never sees half a chain.
"""

from __future__ import annotations

import random

import polars as pl

from engine.backends import Backend, GenerationRequest
from engine.config import CritiqueConfig, Recipe
from engine.constitution import Principle
from engine.conversation import messages_for
from engine.errors import CharterError
from engine.keys import derived_seed, stable_hash
from engine.stages import StageContext, generate_some, usable
from engine.store import KEY


def eligible_principles(cfg: CritiqueConfig, ctx: StageContext) -> list[Principle]:
    unknown = sorted(set(cfg.principles) - set(ctx.constitution.ids))
    if unknown:
        raise CharterError(
            f"critique.principles: unknown principle id(s) {', '.join(unknown)} in {ctx.constitution.path}"
        )
    return [p for p in ctx.constitution.principles if not cfg.principles or p.id in cfg.principles]


def sample_principle(principles: list[Principle], row_key: str, round_: int, seed: int) -> Principle:
    rng = random.Random(derived_seed(seed, row_key, round_))
    return rng.choices(principles, weights=[p.weight for p in principles], k=1)[0]


class Critique:
    table, id_column, backend_role = "revisions", "revision_id", "policy"

    def __init__(self, cfg: CritiqueConfig, ctx: StageContext):
        self.cfg, self.ctx = cfg, ctx
        self.principles = eligible_principles(cfg, ctx)  # checked before anything is written
        self.config_hash = stable_hash("critique", cfg, ctx.model, ctx.backend, ctx.seed, ctx.constitution.sha256)

    def plan(self, tables: dict[str, pl.DataFrame]) -> pl.DataFrame:
        responses = usable(tables["responses"])
        keys = [stable_hash(rid, self.config_hash) for rid in responses["response_id"]]
        return responses.select("prompt_id", "prompt", "response_id", "response").with_columns(pl.Series(KEY, keys))

    def run(self, items: pl.DataFrame, backend: Backend) -> pl.DataFrame:
        current = items["response"].to_list()
        skipped: list[str | None] = [None] * items.height  # a chain stops at its first skipped request
        rounds: list[pl.DataFrame] = []
        for round_ in range(1, self.cfg.rounds + 1):
            frame = self._round(items, backend, current, skipped, round_)
            rounds.append(frame)
            current, skipped = frame["revision"].to_list(), frame["error"].to_list()
        return pl.concat(rounds).with_columns(*self.ctx.provenance(self.config_hash))

    def _round(
        self, items: pl.DataFrame, backend: Backend, current: list[str], skipped: list[str | None], round_: int
    ) -> pl.DataFrame:
        """One critique -> revision round over every item, each request batch submitted at once; an item
        skipped in an earlier round, or whose critique did not fit the context, sends no more requests."""
        cfg, seed = self.cfg, self.ctx.seed
        chosen = [sample_principle(self.principles, k, round_, seed) for k in items[KEY]]
        seeds = [derived_seed(seed, k, round_, "critique") for k in items[KEY]]
        base = [
            (*messages_for(prompt), {"role": "assistant", "content": text}, {"role": "user", "content": p.critique})
            for prompt, text, p in zip(items["prompt"], current, chosen)
        ]
        ask = [None if why else GenerationRequest(m, cfg.sampling, s) for m, s, why in zip(base, seeds, skipped)]
        critiques = generate_some(backend, ask, skipped)
        skipped = [c.error for c in critiques]
        revise = [
            None if why else GenerationRequest(
                (*m, {"role": "assistant", "content": c.text}, {"role": "user", "content": p.revision}), cfg.sampling, s + 1)
            for m, c, p, s, why in zip(base, critiques, chosen, seeds, skipped)
        ]
        revisions = generate_some(backend, revise, skipped)
        return items.select(KEY, "prompt_id", "prompt", "response_id").with_columns(
            pl.Series(self.id_column, [stable_hash(k, round_) for k in items[KEY]]),
            pl.lit(round_).alias("round"),
            pl.Series("principle_id", [p.id for p in chosen]),
            pl.Series("critiqued_text", current),
            pl.Series("critique", [c.text for c in critiques], dtype=pl.String),
            pl.Series("revision", [r.text for r in revisions], dtype=pl.String),
            pl.Series("critique_finish_reason", [c.finish_reason for c in critiques]),
            pl.Series("revision_finish_reason", [r.finish_reason for r in revisions]),
            pl.Series("completion_tokens", [c.completion_tokens + r.completion_tokens for c, r in zip(critiques, revisions)]),
            pl.Series("error", [r.error for r in revisions], dtype=pl.String),
        )


def from_recipe(recipe: Recipe, ctx: StageContext) -> Critique:
    return Critique(recipe.critique, ctx)
