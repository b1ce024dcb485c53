"""respond: n sampled responses per prompt from the policy model."""

from __future__ import annotations

from dataclasses import asdict

import polars as pl

from engine.backends import Backend, GenerationRequest
from engine.config import RespondConfig
from engine.keys import derived_seed, stable_hash
from engine.stages import StageContext
from engine.store import KEY

TABLE = "responses"
ID = "response_id"


def config_hash(cfg: RespondConfig, ctx: StageContext) -> str:
    # The constitution is not an input here: editing it must not redo generation.
    return stable_hash("respond", cfg, ctx.model, ctx.backend, ctx.seed)


def plan(prompts: pl.DataFrame, cfg: RespondConfig, ctx: StageContext) -> pl.DataFrame:
    chash = config_hash(cfg, ctx)
    items = prompts.join(pl.DataFrame({"sample": list(range(cfg.n))}), how="cross")
    keys = [stable_hash(pid, s, chash) for pid, s in zip(items["prompt_id"], items["sample"])]
    seeds = [derived_seed(ctx.seed, pid, s) for pid, s in zip(items["prompt_id"], items["sample"])]
    return items.with_columns(
        pl.Series(KEY, keys), pl.Series(ID, keys), pl.Series("seed", seeds, dtype=pl.Int64)
    )


def messages_for(prompt: str, system_prompt: str | None) -> tuple[dict[str, str], ...]:
    system = ({"role": "system", "content": system_prompt},) if system_prompt else ()
    return (*system, {"role": "user", "content": prompt})


def run(items: pl.DataFrame, backend: Backend, cfg: RespondConfig, ctx: StageContext) -> pl.DataFrame:
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
        *ctx.provenance(config_hash(cfg, ctx)),
    )
