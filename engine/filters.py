"""Quality filters over judged pairs: small named Polars steps, each with a reason code for what it drops.

Applied in this order; a dropped row carries the reason (and a detail) of the FIRST filter that drops it:
judge_error, swap_inconsistent, principle_disagreement, weak_preference, degenerate, length_bias,
judge_injection, near_duplicate_prompt, schema_invalid. Thresholds live in `FilterConfig` (engine/config.py).

Near-duplicate prompts are found by engine/dedup.py (MinHash/LSH, optional embeddings).

Schema validity is checked twice against the one published schema, engine/schemas/pair.schema.json:
here, every row's exported record by Polars expressions compiled from that schema
(engine.record_schema.record_schema_checks; fast enough for millions of rows; reason `schema_invalid`); and at export, by
jsonschema's Draft202012Validator over every exported record (engine.export), which must then find
nothing. Here NaN numbers are also rejected (jsonschema's minimum/maximum let NaN through).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import polars as pl

from engine.config import FilterConfig
from engine.errors import CharterError
from engine.dedup import drop_near_duplicate_prompts
from engine.record_schema import record_columns, record_schema_checks
from engine.store import RunStore, write_json_atomic, write_parquet_atomic

__all__ = ["FilterConfig", "FilterResult", "REASONS", "apply_filters", "filter_run"]

REASONS = (
    "judge_error", "swap_inconsistent", "principle_disagreement", "weak_preference", "degenerate",
    "length_bias", "judge_injection", "near_duplicate_prompt", "schema_invalid",
)
REQUIRED = (
    "pair_id", "prompt_id", "prompt", "response_a", "response_b", "response_a_finish_reason",
    "response_b_finish_reason", "chosen", "rejected", "chosen_side", "p_chosen", "margin", "swap_consistent",
    "swap_consistency", "principle_agreement", "votes", "judge_injection_suspect", "judge_error",
    "constitution_version", "constitution_sha256", "model", "judge_model",
)


@dataclass(frozen=True)
class RowFilter:
    reason: str
    checks: tuple[tuple[pl.Expr, pl.Expr], ...]  # (true where the row is dropped, why), first true check wins
    name_pair: bool = False  # the detail starts "pair ID: "

    @property
    def drops(self) -> pl.Expr:
        return pl.any_horizontal(c for c, _ in self.checks)

    @property
    def detail(self) -> pl.Expr:  # read only where it drops
        why = pl.coalesce([pl.when(c).then(m) for c, m in self.checks]) if len(self.checks) > 1 else self.checks[0][1]
        return pl.format("pair {}: {}", pl.col("pair_id").fill_null("<null>"), why) if self.name_pair else why

    def on_columns(self, prefix: str) -> tuple[RowFilter, dict[str, pl.Expr]]:
        """The same filter reading its conditions from columns (computed once) instead of recomputing them."""
        names = {f"{prefix}{j}": c for j, (c, _) in enumerate(self.checks)}
        checks = tuple((pl.col(n), m) for n, (_, m) in zip(names, self.checks))
        return RowFilter(self.reason, checks, self.name_pair), names


@dataclass(frozen=True)
class FilterResult:
    kept: pl.DataFrame  # the input columns
    dropped: pl.DataFrame  # the input columns + drop_reason + drop_detail
    report: dict[str, Any]


def drop_judge_errors(cfg: FilterConfig) -> RowFilter:
    detail = pl.concat_str(pl.lit("unscored: "), pl.col("judge_error").fill_null("no chosen side"))
    return RowFilter("judge_error", ((pl.col("chosen").is_null(), detail),))


def drop_swap_inconsistent(cfg: FilterConfig) -> RowFilter:
    """Only pairs judged in both orders: a method without orders (pointwise, reward model) stores null here."""
    share = pl.col("swap_consistency").round(3)
    if cfg.swap_mode == "all":
        return _one("swap_inconsistent", ~pl.col("swap_consistent").fill_null(True),
                    pl.format("a principle flipped with the order (swap_consistency {})", share))
    return _one("swap_inconsistent", pl.col("swap_consistency").fill_null(1.0) < cfg.min_swap_consistency,
                pl.format("swap_consistency {} < {}", share, pl.lit(cfg.min_swap_consistency)))


def drop_principle_disagreement(cfg: FilterConfig) -> RowFilter:
    agreement = pl.col("principle_agreement")  # null: a judge without principles (reward model) has nothing to agree
    return _one("principle_disagreement", agreement.fill_null(1.0) < cfg.min_principle_agreement,
                pl.format("principle_agreement {} < {}", agreement.round(3), pl.lit(cfg.min_principle_agreement)))


def drop_weak_preferences(cfg: FilterConfig) -> RowFilter:
    return _one("weak_preference", pl.col("margin").fill_null(0.0) < cfg.min_margin,
                pl.format("margin {} < {}", pl.col("margin").round(4), pl.lit(cfg.min_margin)))


def drop_degenerate(cfg: FilterConfig) -> RowFilter:
    """Empty or identical sides, or (drop_truncated) a side cut off at max_tokens."""
    chosen, rejected = pl.col("chosen").str.strip_chars(), pl.col("rejected").str.strip_chars()
    a_chosen = pl.col("chosen_side") == "a"
    a_finish, b_finish = pl.col("response_a_finish_reason"), pl.col("response_b_finish_reason")
    checks = [(chosen == "", "empty chosen"), (rejected == "", "empty rejected"), (chosen == rejected, "chosen == rejected")]
    if cfg.drop_truncated:
        checks += [
            (pl.when(a_chosen).then(a_finish).otherwise(b_finish) == "length", "chosen truncated at max_tokens"),
            (pl.when(a_chosen).then(b_finish).otherwise(a_finish) == "length", "rejected truncated at max_tokens"),
        ]
    return RowFilter("degenerate", tuple((c.fill_null(False), pl.lit(m)) for c, m in checks))


def drop_length_bias(cfg: FilterConfig) -> RowFilter:
    """Chosen/rejected length ratio out of range: the judge may be rewarding length, not quality."""
    ratio = _chars("chosen") / _chars("rejected")  # UInt32 lengths cast first; an empty side is degenerate
    outside = (ratio < cfg.min_length_ratio) | (ratio > cfg.max_length_ratio)
    detail = pl.format("chosen/rejected length ratio {} outside [{}, {}]", ratio.round(2),
                       pl.lit(cfg.min_length_ratio), pl.lit(cfg.max_length_ratio))
    return _one("length_bias", outside.fill_null(False), detail)


def drop_injection_suspects(cfg: FilterConfig) -> RowFilter:
    suspect = pl.lit(False) if cfg.keep_injection_suspects else pl.col("judge_injection_suspect").fill_null(False)
    return _one("judge_injection", suspect, pl.lit("a response addresses the judge"))


def drop_schema_invalid(record_dtypes: pl.Schema, columns: dict[str, pl.Expr] | None = None) -> RowFilter:
    """Every row's exported record against pair.schema.json, as Polars expressions compiled from that schema."""
    checks = record_schema_checks(record_dtypes, columns)
    return RowFilter("schema_invalid", tuple((~ok.fill_null(False), pl.lit(m)) for ok, m in checks), name_pair=True)


ROW_FILTERS: tuple[Callable[[FilterConfig], RowFilter], ...] = (
    drop_judge_errors, drop_swap_inconsistent, drop_principle_disagreement, drop_weak_preferences,
    drop_degenerate, drop_length_bias, drop_injection_suspects,
)


def apply_filters(judged: pl.DataFrame, cfg: FilterConfig) -> FilterResult:
    """Split judged pairs into kept and dropped (with reason and detail) and report what happened."""
    missing = [c for c in REQUIRED if c not in judged.columns]
    if missing:
        raise CharterError(f"judged table lacks column(s) {', '.join(missing)}; re-run the judge stage")
    lazy = judged.lazy().with_columns(record_columns()["principle_ids"].alias("_principle_ids"))
    schema = drop_schema_invalid(lazy.select(**record_columns()).collect_schema(), {"principle_ids": pl.col("_principle_ids")})
    # Every condition becomes a column first: Polars does not share subexpressions between the reason,
    # the detail and the drop flags, and some conditions (stripping whole responses) are costly.
    conditions: dict[str, pl.Expr] = {}
    rows = []
    for i, make in enumerate(ROW_FILTERS):
        row_filter, columns = make(cfg).on_columns(f"_check{i}_")
        rows.append(row_filter)
        conditions.update(columns)
    schema, schema_conditions = schema.on_columns("_schema_check_")
    marked = lazy.with_columns(**conditions, **schema_conditions).with_columns(
        _first(rows, lambda f: f.detail).alias("drop_detail"),
        _first(rows, lambda f: pl.lit(f.reason)).alias("drop_reason"),
        schema.drops.alias("_schema_drop"),
        schema.detail.alias("_schema_detail"),
    ).select(*judged.columns, "drop_detail", "drop_reason", "_schema_drop", "_schema_detail").collect()
    # select before filter: filtering first would copy every text column of the surviving rows
    survivors = marked.select("prompt_id", "prompt", "drop_reason").filter(pl.col("drop_reason").is_null())
    duplicates, diversity = drop_near_duplicate_prompts(survivors, cfg)
    # a lookup, not a join: a join would copy the whole table once more
    dup_detail = pl.col("prompt_id").replace_strict(duplicates["prompt_id"], duplicates["_dup_detail"], default=None,
                                                    return_dtype=pl.String)
    marked = marked.with_columns(dup_detail.alias("_dup_detail")).with_columns(
        pl.coalesce("drop_reason", pl.when(pl.col("_dup_detail").is_not_null()).then(pl.lit("near_duplicate_prompt")),
                    pl.when("_schema_drop").then(pl.lit("schema_invalid"))),
        pl.coalesce("drop_detail", "_dup_detail", pl.when("_schema_drop").then("_schema_detail")),
    )
    reason = marked["drop_reason"]  # split by select-then-filter: only the output columns are gathered
    kept = marked.select(judged.columns).filter(reason.is_null())
    dropped = marked.select(*judged.columns, "drop_reason", "drop_detail").filter(reason.is_not_null())
    return FilterResult(kept, dropped, filter_report(judged, kept, dropped, diversity, cfg))


def _first(filters: list[RowFilter], value: Callable[[RowFilter], pl.Expr]) -> pl.Expr:
    """The first filter that drops a row wins: a when/then chain in filter order."""
    chain = pl.when(filters[0].drops).then(value(filters[0]))
    for f in filters[1:]:
        chain = chain.when(f.drops).then(value(f))
    return chain.otherwise(pl.lit(None, dtype=pl.String))


def _one(reason: str, drops: pl.Expr, detail: pl.Expr) -> RowFilter:
    return RowFilter(reason, ((drops, detail),))


def _chars(column: str) -> pl.Expr:
    return pl.col(column).str.len_chars().cast(pl.Float64)


# --- report and run I/O -----------------------------------------------------------------------------


def filter_report(
    judged: pl.DataFrame, kept: pl.DataFrame, dropped: pl.DataFrame, diversity: dict, cfg: FilterConfig
) -> dict[str, Any]:
    """Counts per reason in filter order (they add up to the input), distributions before and after."""
    counts = dict(dropped.group_by("drop_reason").len().iter_rows())
    return {
        "input": judged.height,
        "kept": kept.height,
        "dropped": {reason: counts.get(reason, 0) for reason in REASONS},
        # checks a judge method cannot have failed: no orders (pointwise, reward model), no principles
        "not_applicable": {
            "swap_inconsistent": int(judged.select(pl.col("chosen").is_not_null() & pl.col("swap_consistent").is_null()).sum().item()),
            "principle_disagreement": int(judged.select(pl.col("chosen").is_not_null() & pl.col("principle_agreement").is_null()).sum().item()),
        },
        "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
        "distributions": {"input": _distributions(judged), "kept": _distributions(kept)},
        "chosen_longer_share": {"input": _chosen_longer(judged), "kept": _chosen_longer(kept)},
        "diversity": diversity,
    }


def _distributions(frame: pl.DataFrame) -> dict[str, dict[str, float | None]]:
    columns = {"margin": pl.col("margin"), "principle_agreement": pl.col("principle_agreement"),
               "chosen_chars": _chars("chosen"), "rejected_chars": _chars("rejected")}
    stats = {"min": lambda e: e.min(), "p25": lambda e: e.quantile(0.25), "median": lambda e: e.median(),
             "p75": lambda e: e.quantile(0.75), "max": lambda e: e.max(), "mean": lambda e: e.mean()}
    row = frame.select(
        *(f(e.cast(pl.Float64)).alias(f"{name}/{stat}") for name, e in columns.items() for stat, f in stats.items())
    ).row(0, named=True)
    return {name: {stat: _round(row[f"{name}/{stat}"]) for stat in stats} for name in columns}


def _chosen_longer(frame: pl.DataFrame) -> float | None:
    longer = (_chars("chosen") > _chars("rejected")).filter(pl.col("chosen").is_not_null())  # filter the flags, not the table
    return _round(frame.select(longer.mean()).item())


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def filter_run(run_dir: str | Path, cfg: FilterConfig | None = None) -> FilterResult:
    """Filter RUN/judged.parquet into kept/dropped/filter_report (atomic writes); cfg defaults to the run's recipe."""
    from engine.config import filter_config

    if not Path(run_dir, "judged.parquet").is_file():
        raise CharterError(f"{run_dir}: no judged.parquet; run a recipe with a judge section first")
    with RunStore(run_dir) as store:
        if cfg is None:
            cfg = filter_config(store.read_manifest().get("recipe", {}).get("filter"), str(store.root / "manifest.json"))
        result = apply_filters(store.read("judged"), cfg)
        write_parquet_atomic(result.kept, store.table_path("kept"))
        write_parquet_atomic(result.dropped, store.table_path("dropped"))
        write_json_atomic(result.report, store.root / "filter_report.json")
    return result
