"""Quality filters over judged pairs: small named Polars steps, each with a reason code for what it drops.

Applied in this order; a dropped row carries the reason (and a detail) of the FIRST filter that drops it:
judge_error, swap_inconsistent, principle_disagreement, weak_preference, degenerate, length_bias,
judge_injection, near_duplicate_prompt, schema_invalid. Thresholds live in `FilterConfig` (engine/config.py).

Near-duplicate prompts are found by engine/dedup.py (MinHash/LSH, optional embeddings).

Two passes over the judged table. The first is a Polars query on the streaming engine that collects only the
distinct prompts the row filters leave (for engine.dedup). The second marks every row with its reason, a batch
at a time (engine/parquet_batches.py), hands kept and dropped rows on as they come and keeps only a few narrow
values per row for the report. `filter_run` reads RUN/judged.parquet and appends to kept.parquet and
dropped.parquet, so memory follows the batch size and the number of distinct prompts, not the number of pairs;
`apply_filters` runs the same code over a table already in memory.

Schema validity is checked twice against the one published schema, engine/schemas/pair.schema.json:
here, every row's exported record by Polars expressions compiled from that schema
(engine.record_schema.record_schema_checks; fast enough for millions of rows; reason `schema_invalid`); and at
export (engine.export), by the same expressions over every exported record and by jsonschema's
Draft202012Validator over the first records of every batch, which must then find nothing. Here NaN numbers are
also rejected (jsonschema's minimum/maximum let NaN through).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import polars as pl

from engine.config import FilterConfig
from engine.dedup import drop_near_duplicate_prompts
from engine.errors import CharterError
from engine.parquet_batches import ParquetAppender, batches
from engine.record_schema import record_columns, record_schema_checks
from engine.store import RunStore, write_json_atomic

__all__ = ["FilterConfig", "FilterResult", "FilteredRun", "REASONS", "apply_filters", "filter_run"]

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
    """Split judged pairs held in memory into kept and dropped (with reason and detail), and report what happened."""
    duplicates, diversity = _near_duplicates(_checked(judged.lazy()), cfg, engine="auto")
    kept, dropped = [], []
    values = mark_batches(batches(judged), cfg, duplicates, {"kept": kept.append, "dropped": dropped.append})
    return FilterResult(pl.concat(kept), pl.concat(dropped), filter_report(summarise(values), diversity, cfg))


def mark_batches(judged: Iterable[pl.DataFrame], cfg: FilterConfig, duplicates: pl.DataFrame,
                 sinks: dict[str, Callable[[pl.DataFrame], None]]) -> pl.DataFrame:
    """Mark each batch of judged rows, hand its kept and dropped rows to sinks["kept"] and sinks["dropped"], and
    return the narrow per-row values the report is computed from: one pass over the rows does all three."""
    values = []
    for batch in judged:
        marked = mark_drops(batch.lazy(), cfg, duplicates)
        kept, dropped, batch_values = pl.collect_all([*split_kept_dropped(marked, batch.columns), report_values(marked)])
        sinks["kept"](kept)
        sinks["dropped"](dropped)
        values.append(batch_values)
    return pl.concat(values)


def surviving_prompts(judged: pl.LazyFrame, cfg: FilterConfig) -> pl.LazyFrame:
    """Distinct (prompt_id, prompt) of the pairs no row filter drops: all that near-duplicate detection reads."""
    filters, conditions = _row_filters(cfg)
    dropped = pl.any_horizontal(f.drops for f in filters)
    return judged.with_columns(**conditions).filter(~dropped).select("prompt_id", "prompt").unique("prompt_id")


def mark_drops(judged: pl.LazyFrame, cfg: FilterConfig, duplicates: pl.DataFrame) -> pl.LazyFrame:
    """The judged rows plus drop_reason and drop_detail (null where kept), row by row: the row filters, then
    `duplicates` (prompt_id -> _dup_detail, from engine.dedup), then the schema."""
    columns = judged.collect_schema().names()
    lazy = judged.with_columns(record_columns()["principle_ids"].alias("_principle_ids"))
    schema = drop_schema_invalid(lazy.select(**record_columns()).collect_schema(), {"principle_ids": pl.col("_principle_ids")})
    schema, schema_conditions = schema.on_columns("_schema_check_")
    filters, conditions = _row_filters(cfg)
    # joined batch by batch; the right side holds the duplicate prompts only
    lazy = lazy.join(duplicates.lazy(), on="prompt_id", how="left", maintain_order="left")
    duplicate, schema_invalid = pl.col("_dup_detail").is_not_null(), pl.col("_schema_drop")
    return lazy.with_columns(**conditions, **schema_conditions).with_columns(
        _first(filters, lambda f: f.detail).alias("drop_detail"),
        _first(filters, lambda f: pl.lit(f.reason)).alias("drop_reason"),
        schema.drops.alias("_schema_drop"),
        schema.detail.alias("_schema_detail"),
    ).select(
        *columns,
        pl.coalesce("drop_reason", pl.when(duplicate).then(pl.lit("near_duplicate_prompt")),
                    pl.when(schema_invalid).then(pl.lit("schema_invalid"))),
        pl.coalesce("drop_detail", "_dup_detail", pl.when(schema_invalid).then("_schema_detail")),
    )


def split_kept_dropped(marked: pl.LazyFrame, columns: list[str]) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Kept rows (the input columns) and dropped rows (plus drop_reason and drop_detail)."""
    kept = pl.col("drop_reason").is_null()
    return marked.filter(kept).select(columns), marked.filter(~kept).select(*columns, "drop_reason", "drop_detail")


def _row_filters(cfg: FilterConfig) -> tuple[list[RowFilter], dict[str, pl.Expr]]:
    """The row filters reading their conditions from columns, and those columns' expressions.

    Every condition becomes a column first: Polars does not share subexpressions between the reason,
    the detail and the drop flags, and some conditions (stripping whole responses) are costly.
    """
    filters, conditions = [], {}
    for i, make in enumerate(ROW_FILTERS):
        row_filter, columns = make(cfg).on_columns(f"_check{i}_")
        filters.append(row_filter)
        conditions.update(columns)
    return filters, conditions


def _checked(judged: pl.LazyFrame) -> pl.LazyFrame:
    """The judged table, refused with one clear error when a column the filters read is missing."""
    missing = [c for c in REQUIRED if c not in judged.collect_schema().names()]
    if missing:
        raise CharterError(f"judged table lacks column(s) {', '.join(missing)}; re-run the judge stage")
    return judged


def _near_duplicates(judged: pl.LazyFrame, cfg: FilterConfig, engine: str) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Pass 1: the distinct prompts the row filters leave, then engine.dedup over them."""
    return drop_near_duplicate_prompts(surviving_prompts(judged, cfg).collect(engine=engine), cfg)


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

MEASURES = ("margin", "principle_agreement", "chosen_chars", "rejected_chars")
STATS = {"min": lambda e: e.min(), "p25": lambda e: e.quantile(0.25), "median": lambda e: e.median(),
         "p75": lambda e: e.quantile(0.75), "max": lambda e: e.max(), "mean": lambda e: e.mean()}


def report_values(marked: pl.LazyFrame) -> pl.LazyFrame:
    """Per row, the few narrow values the report needs (~30 bytes): kept for all rows while the texts stream on."""
    scored = pl.col("chosen").is_not_null()
    return marked.select(
        pl.col("drop_reason").is_null().alias("kept"),
        pl.col("drop_reason").cast(pl.Enum(REASONS)),
        scored.alias("scored"),
        (scored & pl.col("swap_consistent").is_null()).alias("no_orders"),
        (scored & pl.col("principle_agreement").is_null()).alias("no_principles"),
        pl.col("margin").cast(pl.Float64),
        pl.col("principle_agreement").cast(pl.Float64),
        pl.col("chosen").str.len_chars().alias("chosen_chars"),
        pl.col("rejected").str.len_chars().alias("rejected_chars"),
    )


def summarise(values: pl.DataFrame) -> dict[str, Any]:
    """Counts and statistics over all rows' report values, as one flat dict (filter_report nests it)."""
    kept, scored, reason = pl.col("kept"), pl.col("scored"), pl.col("drop_reason")
    longer = pl.col("chosen_chars") > pl.col("rejected_chars")
    measures = {name: pl.col(name).cast(pl.Float64) for name in MEASURES}
    return values.select(
        pl.len().alias("input"),
        kept.sum().alias("kept"),
        *((reason == r).sum().alias(f"dropped/{r}") for r in REASONS),
        pl.col("no_orders").sum().alias("not_applicable/swap_inconsistent"),
        pl.col("no_principles").sum().alias("not_applicable/principle_disagreement"),
        *(f(e).alias(f"input/{name}/{stat}") for name, e in measures.items() for stat, f in STATS.items()),
        *(f(e.filter(kept)).alias(f"kept/{name}/{stat}") for name, e in measures.items() for stat, f in STATS.items()),
        longer.filter(scored).mean().alias("input/chosen_longer"),
        longer.filter(scored & kept).mean().alias("kept/chosen_longer"),
    ).row(0, named=True)


def filter_report(summary: dict[str, Any], diversity: dict, cfg: FilterConfig) -> dict[str, Any]:
    """Counts per reason in filter order (they add up to the input), distributions before and after."""
    return {
        "input": summary["input"],
        "kept": summary["kept"],
        "dropped": {reason: summary[f"dropped/{reason}"] for reason in REASONS},
        # checks a judge method cannot have failed: no orders (pointwise, reward model), no principles
        "not_applicable": {name: summary[f"not_applicable/{name}"] for name in ("swap_inconsistent", "principle_disagreement")},
        "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
        "distributions": {
            rows: {name: {stat: _round(summary[f"{rows}/{name}/{stat}"]) for stat in STATS} for name in MEASURES}
            for rows in ("input", "kept")
        },
        "chosen_longer_share": {rows: _round(summary[f"{rows}/chosen_longer"]) for rows in ("input", "kept")},
        "diversity": diversity,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


@dataclass(frozen=True)
class FilteredRun:
    kept: Path  # RUN/kept.parquet
    dropped: Path  # RUN/dropped.parquet
    report: dict[str, Any]  # also in RUN/filter_report.json


def filter_run(run_dir: str | Path, cfg: FilterConfig | None = None) -> FilteredRun:
    """Filter RUN/judged.parquet into kept/dropped/filter_report a batch at a time: memory follows the batch size
    and the number of distinct prompts, not the number of pairs. cfg defaults to the run's recipe."""
    from engine.config import filter_config

    if not Path(run_dir, "judged.parquet").is_file():
        raise CharterError(f"{run_dir}: no judged.parquet; run a recipe with a judge section first")
    with RunStore(run_dir) as store:
        if cfg is None:
            cfg = filter_config(store.read_manifest().get("recipe", {}).get("filter"), str(store.root / "manifest.json"))
        judged = store.readable_table("judged")
        duplicates, diversity = _near_duplicates(_checked(pl.scan_parquet(judged)), cfg, engine="streaming")  # pass 1
        columns = pl.scan_parquet(judged).collect_schema()
        paths = {"kept": store.table_path("kept"), "dropped": store.table_path("dropped")}
        with ParquetAppender(paths["kept"], columns) as kept, \
                ParquetAppender(paths["dropped"], {**columns, "drop_reason": pl.String, "drop_detail": pl.String}) as dropped:
            values = mark_batches(batches(judged), cfg, duplicates, {"kept": kept.append, "dropped": dropped.append})
        report = filter_report(summarise(values), diversity, cfg)
        write_json_atomic(report, store.root / "filter_report.json")
    return FilteredRun(paths["kept"], paths["dropped"], report)
