"""respond: n sampled responses per prompt from the policy model."""

from __future__ import annotations

from dataclasses import asdict

import polars as pl

from engine.backends import Backend, GenerationRequest
from engine.config import Recipe, RespondConfig
from engine.conversation import messages_for
from engine.keys import derived_seed, stable_hash
from engine.stages import StageContext
from engine.store import KEY


class Respond:
    table, id_column, backend_role = "responses", "response_id", "policy"

    def __init__(self, cfg: RespondConfig, ctx: StageContext):
        self.cfg, self.ctx = cfg, ctx
        # The constitution is not an input here: editing it must not redo generation.
        self.config_hash = stable_hash("respond", cfg, ctx.model, ctx.backend, ctx.seed)

    def plan(self, tables: dict[str, pl.DataFrame]) -> pl.DataFrame:
        items = tables["prompts"].join(pl.DataFrame({"sample": list(range(self.cfg.n))}), how="cross")
        keys = [stable_hash(pid, s, self.config_hash) for pid, s in zip(items["prompt_id"], items["sample"])]
        seeds = [derived_seed(self.ctx.seed, pid, s) for pid, s in zip(items["prompt_id"], items["sample"])]
        return items.with_columns(
            pl.Series(KEY, keys), pl.Series(self.id_column, keys), pl.Series("seed", seeds, dtype=pl.Int64)
        )

    def run(self, items: pl.DataFrame, backend: Backend) -> pl.DataFrame:
        cfg = self.cfg
        requests = [
            GenerationRequest(messages_for(p, cfg.system_prompt), cfg.sampling, seed)
            for p, seed in zip(items["prompt"], items["seed"])
        ]
        completions = backend.generate(requests)
        return items.with_columns(
            pl.Series("response", [c.text for c in completions], dtype=pl.String),
            pl.Series("finish_reason", [c.finish_reason for c in completions], dtype=pl.String),
            pl.Series("prompt_tokens", [c.prompt_tokens for c in completions], dtype=pl.Int64),
            pl.Series("completion_tokens", [c.completion_tokens for c in completions], dtype=pl.Int64),
            pl.lit(asdict(cfg.sampling)).alias("sampling"),
            *self.ctx.provenance(self.config_hash),
            pl.Series("error", [c.error for c in completions], dtype=pl.String),
        )


def from_recipe(recipe: Recipe, ctx: StageContext) -> Respond:
    return Respond(recipe.respond, ctx)
