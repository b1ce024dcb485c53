"""`charter judge-eval`: how often the judge agrees with human preference labels, beside baselines.

Reports accuracy (p_a > 0.5 for the human-chosen response), accuracy with swap-inconsistent pairs
counted as ties (0.5), swap consistency, position bias (share of votes preferring the first slot),
the length baseline (always prefer the longer response) and chance.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import polars as pl

from engine.backends import Backend
from engine.config import JudgeConfig
from engine.constitution import Constitution
from engine.preferences import PreferenceFile
from engine.stages.judge import collect_votes, orient


@dataclass(frozen=True)
class JudgeEvalResult:
    report: dict[str, Any]
    judged: pl.DataFrame


def length_baseline(pairs: pl.DataFrame) -> float:
    """Share of pairs where the longer response is the human-chosen one (equal lengths count half)."""
    diff = pairs["response_a"].str.len_chars().cast(pl.Int64) - pairs["response_b"].str.len_chars().cast(pl.Int64)
    return float(((diff > 0).cast(pl.Float64) + 0.5 * (diff == 0).cast(pl.Float64)).mean())


def metrics(judged: pl.DataFrame, votes: pl.DataFrame) -> dict[str, float | int]:
    scored = judged.filter(pl.col("p_a").is_not_null())
    human_wins = (pl.col("p_a") > 0.5).cast(pl.Float64)
    ties_for_flips = pl.when(pl.col("swap_consistent")).then(human_wins).otherwise(0.5)
    scored_votes = votes.filter(pl.col("p_first").is_not_null())
    out = scored.select(
        human_wins.mean().alias("accuracy"),
        ties_for_flips.mean().alias("accuracy_with_ties"),
        pl.col("swap_consistent").cast(pl.Float64).mean().alias("swap_consistency_pairs"),
        pl.col("swap_consistency").mean().alias("swap_consistency_principles"),
        pl.col("principle_agreement").mean().alias("principle_agreement"),
        pl.col("margin").mean().alias("mean_margin"),
    ).row(0, named=True)
    out["position_bias_first_slot"] = float((scored_votes["p_first"] > 0.5).mean()) if scored_votes.height else None
    out["pairs_scored"] = scored.height
    out["pairs_unscored"] = judged.height - scored.height
    out["votes"] = votes.height
    return out


def evaluate_judge(
    preferences: PreferenceFile, backend: Backend, cfg: JudgeConfig, constitution: Constitution, seed: int, source: str
) -> JudgeEvalResult:
    pairs = preferences.pairs
    start = time.perf_counter()
    votes = collect_votes(pairs, backend, cfg, constitution, seed)
    seconds = time.perf_counter() - start
    judged = orient(pairs, votes)
    report = {
        "source": source,
        "rows_read": preferences.rows_read,
        "pairs": pairs.height,
        "rows_skipped": len(preferences.skipped),
        "skipped_examples": preferences.skipped[:10],
        "judge": {
            "model": backend.model_id,
            "backend": backend.name,
            "mode": "cot" if cfg.cot else "logprob",
            "principles_per_pair": cfg.principles or len(constitution.principles),
            "constitution": f"{constitution.name} {constitution.version} ({constitution.sha256[:12]})",
            "seed": seed,
        },
        **metrics(judged, votes),
        "length_baseline": length_baseline(pairs),
        "chance": 0.5,
        "seconds": seconds,
        "pairs_per_second": pairs.height / seconds if seconds > 0 else None,
    }
    return JudgeEvalResult(report, judged)
