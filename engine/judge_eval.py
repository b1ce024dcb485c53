"""`charter judge-eval`: how often the judge agrees with human preference labels, beside baselines.

Reports accuracy (p_a > 0.5 for the human-chosen response), accuracy with swap-inconsistent pairs
counted as ties (0.5), swap consistency, position bias (share of votes preferring the first slot),
the length baselines (always prefer the longer response; always the shorter) and chance. The judge is
configured exactly as a recipe's `judge:` section is (engine.config.judge_config).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from engine.backends import Backend
from engine.config import JudgeConfig, judge_config, load_recipe
from engine.constitution import DEFAULT_CONSTITUTION, Constitution
from engine.judges import judge_method, orient
from engine.models import DEFAULT_MODEL, resolve_model
from engine.preferences import PreferenceFile
from engine.validation import read_yaml


@dataclass(frozen=True)
class JudgeEvalResult:
    report: dict[str, Any]
    judged: pl.DataFrame


@dataclass(frozen=True)
class JudgeEvalSettings:
    judge: JudgeConfig
    backend: str
    model_path: Path
    constitution: str
    seed: int


def judge_settings(recipe: Path | None, flags: dict[str, Any], backend_options: dict[str, Any]) -> JudgeEvalSettings:
    """The recipe's judge section (if any) with the command line's flags laid over it, parsed like a recipe."""
    raw = read_yaml(recipe, "recipe") if recipe is not None else {}
    if recipe is not None:
        load_recipe(recipe)  # the whole recipe is valid, or one error names the field
    section = dict(raw.get("judge") or {})
    section.update({k: flags[k] for k in ("mode", "backend", "principles", "cot") if flags.get(k) is not None})
    recipe_backend = raw.get("backend", "vllm")
    if backend_options:
        inherited = raw.get("backend_options") if section.get("backend", recipe_backend) == recipe_backend else None
        section["backend_options"] = {**(section.get("backend_options", inherited) or {}), **backend_options}
    cfg = judge_config(section, str(recipe or "judge-eval"), recipe_backend, raw.get("backend_options"))
    model = flags.get("model") or section.get("model") or raw.get("model") or DEFAULT_MODEL
    return JudgeEvalSettings(
        judge=cfg, backend=cfg.backend_kind(recipe_backend), model_path=resolve_model(model),
        constitution=flags.get("constitution") or raw.get("constitution", DEFAULT_CONSTITUTION),
        seed=flags["seed"] if flags.get("seed") is not None else raw.get("seed", 0),
    )


def wilson_interval(share: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a share measured on n pairs (better than the normal one near 0 or 1)."""
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (round(centre - half, 4), round(centre + half, 4))


def length_baseline(pairs: pl.DataFrame) -> float:
    """Share of pairs where the longer response is the human-chosen one (equal lengths count half)."""
    diff = pairs["response_a"].str.len_chars().cast(pl.Int64) - pairs["response_b"].str.len_chars().cast(pl.Int64)
    return float(((diff > 0).cast(pl.Float64) + 0.5 * (diff == 0).cast(pl.Float64)).mean())


def shorter_baseline(pairs: pl.DataFrame) -> float:
    """Share of pairs where the shorter response is the human-chosen one (equal lengths count half)."""
    return 1.0 - length_baseline(pairs)


def metrics(judged: pl.DataFrame, votes: pl.DataFrame) -> dict[str, float | int]:
    scored = judged.filter(pl.col("p_a").is_not_null())
    human_wins = (pl.col("p_a") > 0.5).cast(pl.Float64)
    # a flip between orders counts as a tie; methods without orders (swap_consistent null) have none
    ties_for_flips = pl.when(pl.col("swap_consistent").fill_null(True)).then(human_wins).otherwise(0.5)
    out = scored.select(
        human_wins.mean().alias("accuracy"),
        ties_for_flips.mean().alias("accuracy_with_ties"),
        pl.col("swap_consistent").cast(pl.Float64).mean().alias("swap_consistency_pairs"),
        pl.col("swap_consistency").mean().alias("swap_consistency_principles"),
        pl.col("principle_agreement").mean().alias("principle_agreement"),
        pl.col("margin").mean().alias("mean_margin"),
    ).row(0, named=True)
    first = votes["p_first"].drop_nulls() if "p_first" in votes.columns else pl.Series([], dtype=pl.Float64)
    out["position_bias_first_slot"] = float((first > 0.5).mean()) if first.len() else None  # pairwise only
    out["accuracy_ci95"] = wilson_interval(out["accuracy"], scored.height) if scored.height else None
    out["pairs_scored"] = scored.height
    out["pairs_unscored"] = judged.height - scored.height
    out["votes"] = votes.height
    return out


def reliability_bins(judged: pl.DataFrame, width: float = 0.05) -> list[dict[str, Any]]:
    """Judge confidence against human agreement: pairs binned by p_chosen (the judge's probability for its pick, 0.5-1),
    with the share of each bin where the pick is the human-chosen response (`p_a` = P(human-chosen better); a tie
    counts half). A calibrated judge lies on the diagonal."""
    scored = judged.filter(pl.col("p_a").is_not_null()).select(
        pl.max_horizontal("p_a", 1 - pl.col("p_a")).alias("p_chosen"),
        pl.when(pl.col("p_a") > 0.5).then(1.0).when(pl.col("p_a") < 0.5).then(0.0).otherwise(0.5).alias("agree"))
    n_bins = round(0.5 / width)
    binned = scored.with_columns(((pl.col("p_chosen") - 0.5) / width).floor().clip(0, n_bins - 1).cast(pl.Int32).alias("bin"))
    rows = binned.group_by("bin").agg(pl.len().alias("pairs"), pl.col("p_chosen").mean().alias("mean_p_chosen"),
                                      pl.col("agree").mean().alias("agreement")).sort("bin")
    return [{"lo": round(0.5 + b * width, 4), "hi": round(0.5 + (b + 1) * width, 4), "pairs": n,
             "mean_p_chosen": round(p, 4), "agreement": round(a, 4)} for b, n, p, a in rows.iter_rows()]


def evaluate_judge(
    preferences: PreferenceFile, backend: Backend, cfg: JudgeConfig, constitution: Constitution, seed: int, source: str
) -> JudgeEvalResult:
    pairs, method = preferences.pairs, judge_method(cfg.mode)
    start = time.perf_counter()
    votes = method.votes(pairs, backend, cfg, constitution, seed)
    seconds = time.perf_counter() - start
    judged = orient(pairs, method.aggregate(votes), votes)
    report = {
        "source": source,
        "rows_read": preferences.rows_read,
        "pairs": pairs.height,
        "rows_skipped": len(preferences.skipped),
        "skipped_examples": preferences.skipped[:10],
        "judge": {
            "model": backend.model_id,
            "backend": backend.name,
            "mode": method.label(cfg),
            "principles_per_pair": cfg.principles or len(constitution.principles),
            "constitution": f"{constitution.name} {constitution.version} ({constitution.sha256[:12]})",
            "seed": seed,
        },
        **metrics(judged, votes),
        "length_baseline": length_baseline(pairs),
        "shorter_baseline": shorter_baseline(pairs),
        "chance": 0.5,
        "reliability": reliability_bins(judged),
        "seconds": seconds,
        "pairs_per_second": pairs.height / seconds if seconds > 0 else None,
    }
    return JudgeEvalResult(report, judged)
