"""What the run report reads from a run directory, reduced to what its plots need.

Tables are scanned lazily and only the columns a plot needs are read: one narrow row per judged pair
(lengths, scores, kept or dropped), one row per principle (from the nested votes), a dozen example rows
fetched by position. So a million pairs cost a few numeric columns in memory, not their texts.
Everything else is small JSON: the manifest, filter_report.json, a judge-eval report, training records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from engine.errors import CharterError
from engine.filters import REASONS
from engine.store import RunStore
from engine.validation import schema_errors

TABLES = ("prompts", "responses", "revisions", "pairs", "judged", "kept", "dropped")
JUDGE_EVAL = "judge_eval.json"  # a `charter judge-eval --report` output kept in the run directory
KEPT_EXAMPLES = 3
JUDGE_EVAL_SCHEMA = {
    "type": "object",
    "required": ["accuracy", "length_baseline", "chance"],
    "properties": {
        **{k: {"type": ["number", "null"]} for k in ("accuracy", "accuracy_with_ties", "length_baseline",
                                                      "shorter_baseline", "chance", "position_bias_first_slot")},
        "accuracy_ci95": {"type": ["array", "null"], "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
        "pairs": {"type": "integer"},
        "reliability": {"type": "array", "items": {"type": "object", "required": ["lo", "hi", "pairs", "agreement"]}},
    },
}


@dataclass(frozen=True)
class RunData:
    root: Path
    manifest: dict[str, Any]
    counts: dict[str, int]  # rows per stage table present
    filter_report: dict[str, Any] | None
    pairs: pl.DataFrame | None  # one narrow row per judged pair (pair_values)
    principles: pl.DataFrame | None  # one row per principle (principle_table)
    position_bias: float | None  # share of pairwise votes for the first slot
    examples: dict[str, list[dict[str, Any]]]  # "kept" / "dropped" / "judged" / "pairs" -> rows with texts
    judge_eval: dict[str, Any] | None
    training: dict[str, Any] | None

    @property
    def filtered(self) -> bool:
        return self.filter_report is not None and {"kept", "dropped"} <= set(self.counts)


def load_run(run_dir: str | Path, judge_eval: str | Path | None = None) -> RunData:
    """Read a run directory for its report; CharterError naming the file when something is not readable."""
    root = Path(run_dir)
    if not (root / "manifest.json").is_file():
        raise CharterError(f"{root}: not a charter run directory (no manifest.json)")
    store = RunStore(root, writer=False)
    manifest = store.read_manifest()
    paths = {t: store.readable_table(t) for t in TABLES if store.table_path(t).is_file()}
    counts = {t: pq.read_metadata(p).num_rows for t, p in paths.items()}
    report_path = root / "filter_report.json"
    filter_report = _read_json(report_path, "filter report") if report_path.is_file() else None
    filtered = filter_report is not None and {"kept", "dropped"} <= set(paths)
    pairs = pair_values(paths, filtered) if "judged" in paths else None
    principles, bias = principle_table(paths["judged"]) if "judged" in paths else (None, None)
    eval_path = Path(judge_eval) if judge_eval is not None else root / JUDGE_EVAL
    return RunData(
        root=root, manifest=manifest, counts=counts, filter_report=filter_report, pairs=pairs, principles=principles,
        position_bias=bias, examples=examples(paths, pairs, filtered),
        judge_eval=read_judge_eval(eval_path) if judge_eval is not None or eval_path.is_file() else None,
        training=training_records(root, manifest),
    )


def pair_values(paths: dict[str, Path], filtered: bool) -> pl.DataFrame:
    """Per judged pair, the few numbers the plots need (~50 bytes): from kept + dropped when the run was
    filtered (so each pair knows its fate), else from the judged table."""
    def narrow(path: Path, table: str) -> pl.LazyFrame:
        scan = pl.scan_parquet(path)
        reason = pl.col("drop_reason") if "drop_reason" in scan.collect_schema().names() else pl.lit(None, pl.String)
        return scan.with_row_index("row").select(
            pl.lit(table).alias("table"), "row", reason.cast(pl.Enum(REASONS)).alias("drop_reason"),
            pl.col("chosen").is_not_null().alias("scored"), p_a_expr(scan),
            *(pl.col(c).cast(pl.Float64) for c in ("p_chosen", "margin", "swap_consistency", "principle_agreement")),
            pl.col("chosen").str.len_chars().alias("chosen_chars"), pl.col("rejected").str.len_chars().alias("rejected_chars"),
        )

    sources = [("kept", paths["kept"]), ("dropped", paths["dropped"])] if filtered else [("judged", paths["judged"])]
    frames = pl.collect_all([narrow(path, table) for table, path in sources], engine="streaming")
    return pl.concat(frames).with_columns(pl.col("table").cast(pl.Enum(["kept", "dropped", "judged"])))


def p_a_expr(scan: pl.LazyFrame) -> pl.Expr:
    """P(response_a is better): stored by the judge stage; else (tables made elsewhere) from p_chosen and chosen_side."""
    if "p_a" in scan.collect_schema().names():
        return pl.col("p_a").cast(pl.Float64)
    return pl.when(pl.col("chosen_side") == "b").then(1 - pl.col("p_chosen")).otherwise(pl.col("p_chosen")).alias("p_a")


def principle_table(judged: Path) -> tuple[pl.DataFrame | None, float | None]:
    """Per principle: votes, errors, pairs, share preferring the revision (response_b), swap consistency, agreement
    with the pair's aggregate, share of votes for the first slot. None for a judge without principles."""
    scan = pl.scan_parquet(judged)
    votes_type = scan.collect_schema().get("votes")
    fields = {f.name for f in votes_type.inner.fields} if isinstance(votes_type, pl.List) else set()
    if "principle_id" not in fields:
        return None, None
    long = (scan.select(p_a_expr(scan).alias("pair_p_a"), "votes").with_row_index("pair").explode("votes")
            .unnest("votes").filter(pl.col("principle_id").is_not_null()))
    side = lambda e: pl.when(e > 0.5).then(1).when(e < 0.5).then(-1).otherwise(0)  # noqa: E731
    if {"order", "p_first"} <= fields:  # pairwise: a principle counts when both orders were scored
        p_a = pl.when(pl.col("order") == "ab").then(pl.col("p_first")).otherwise(1 - pl.col("p_first"))
        per = long.with_columns(p_a.alias("p_a")).group_by("pair", "principle_id").agg(
            pl.col("pair_p_a").first(), pl.len().alias("votes"), pl.col("error").is_not_null().sum().alias("errors"),
            pl.when(pl.col("p_a").count() == 2).then(pl.col("p_a").mean()).alias("p_a"),
            pl.when(pl.col("p_a").count() == 2).then((pl.col("p_a") > 0.5).all() | (pl.col("p_a") < 0.5).all())
            .alias("consistent"),
            (pl.col("p_first") > 0.5).sum().alias("first_slot"), pl.col("p_first").count().alias("scored_votes"))
    elif {"side", "score"} <= fields:  # pointwise: sigmoid of the two sides' yes/no log-odds; no orders
        score = lambda which: pl.col("score").filter(pl.col("side") == which).first()  # noqa: E731
        per = long.group_by("pair", "principle_id").agg(
            pl.col("pair_p_a").first(), pl.len().alias("votes"), pl.col("error").is_not_null().sum().alias("errors"),
            (1 / (1 + (score("b") - score("a")).exp())).alias("p_a"),
        ).with_columns(pl.lit(None, pl.Boolean).alias("consistent"), pl.lit(None, pl.UInt32).alias("first_slot"),
                       pl.lit(None, pl.UInt32).alias("scored_votes"))
    else:
        return None, None
    table = per.group_by("principle_id").agg(
        pl.col("votes").sum(), pl.col("errors").sum(), pl.col("p_a").count().alias("pairs"),
        pl.when(pl.col("p_a") < 0.5).then(1.0).when(pl.col("p_a") > 0.5).then(0.0).otherwise(0.5)
        .filter(pl.col("p_a").is_not_null()).mean().alias("prefers_revision"),
        pl.col("consistent").cast(pl.Float64).mean().alias("swap_consistency"),
        (side(pl.col("p_a")) == side(pl.col("pair_p_a"))).filter(pl.col("p_a").is_not_null() & pl.col("pair_p_a").is_not_null())
        .cast(pl.Float64).mean().alias("agreement"),
        pl.col("first_slot").sum().alias("first_slot_votes"), pl.col("scored_votes").sum(),
    ).sort("principle_id").collect(engine="streaming")
    if table.height == 0:
        return None, None
    scored_votes = table["scored_votes"].sum()  # 0 for a judge that asks in no order (pointwise)
    bias = float(table["first_slot_votes"].sum() / scored_votes) if scored_votes else None
    first_slot = pl.col("first_slot_votes") / pl.when(pl.col("scored_votes") > 0).then(pl.col("scored_votes"))
    return table.with_columns(first_slot.alias("first_slot")).drop("first_slot_votes", "scored_votes"), bias


def examples(paths: dict[str, Path], pairs: pl.DataFrame | None, filtered: bool) -> dict[str, list[dict[str, Any]]]:
    """A few kept pairs (the most confident), the first dropped pair of each reason, or a few unjudged pairs."""
    if pairs is None:
        return {"pairs": _rows(paths["pairs"], list(range(min(3, _height(paths["pairs"]))))) if "pairs" in paths else []}
    if not filtered:
        top = pairs.filter(pl.col("scored")).top_k(KEPT_EXAMPLES, by="margin")["row"].to_list()
        return {"judged": _rows(paths["judged"], top)}
    kept = pairs.filter(pl.col("table") == "kept").top_k(KEPT_EXAMPLES, by="margin")["row"].to_list()
    firsts = pairs.filter(pl.col("table") == "dropped").group_by("drop_reason").agg(pl.col("row").min()).sort("drop_reason")
    return {"kept": _rows(paths["kept"], kept), "dropped": _rows(paths["dropped"], firsts["row"].to_list())}


def _rows(path: Path, rows: list[int]) -> list[dict[str, Any]]:
    """The rows at these positions, texts included; one pass over the file reading only the shown columns."""
    if not rows:
        return []
    scan = pl.scan_parquet(path)
    wanted = ("pair_id", "prompt", "response_a", "response_b", "chosen_side", "p_chosen", "margin", "principle_agreement",
              "swap_consistency", "drop_reason", "drop_detail")
    columns = [c for c in wanted if c in scan.collect_schema().names()]
    found = scan.with_row_index("row").filter(pl.col("row").is_in(rows)).select("row", *columns).collect()
    order = {r: i for i, r in enumerate(rows)}
    return sorted(found.to_dicts(), key=lambda r: order[r["row"]])


def _height(path: Path) -> int:
    return pq.read_metadata(path).num_rows


def read_judge_eval(path: Path) -> dict[str, Any]:
    """A `charter judge-eval --report` file, checked for the fields the report plots."""
    data = _read_json(path, "judge-eval report")
    problems = schema_errors(data, JUDGE_EVAL_SCHEMA, str(path))
    if problems:
        raise CharterError(f"{problems[0]} (expected the JSON that `charter judge-eval --report` writes)")
    return data


def training_records(root: Path, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """What `charter run` trained and evaluated (manifest `train`): each trainer's logged history, the reward model's
    accuracy, the policy evaluation. Paths in the manifest are relative to where the run was started."""
    train = manifest.get("train") or {}
    if not train:
        return None
    base = launch_dir(root, manifest)
    trainers, missing = {}, []
    for name in ("reward", "dpo", "ppo"):
        if name not in train:
            continue
        record = _locate(base, train[name].get("model"), "charter_train.json")
        if record is None:
            missing.append(f"{name}: {train[name].get('model')}/charter_train.json")
            continue
        data = _read_json(record, "training record")
        trainers[name] = {"kind": data.get("kind", name), "log": data.get("log_history") or [],
                          "global_step": data.get("global_step"), "seconds": train[name].get("seconds")}
    reward_eval = (train.get("reward") or {}).get("eval")
    policy_file = _locate(base, (train.get("eval") or {}).get("report"), "policy_eval.json")
    policy_eval = _read_json(policy_file, "policy evaluation") if policy_file else None
    return {"trainers": trainers, "reward_eval": reward_eval, "policy_eval": policy_eval, "missing": missing}


def launch_dir(root: Path, manifest: dict[str, Any]) -> Path:
    """The folder `charter run` was started from: the run directory minus the recipe's relative output_dir."""
    out = (manifest.get("recipe") or {}).get("output_dir")
    resolved = root.resolve()
    if out and not Path(out).is_absolute():
        parts = Path(out).parts
        if resolved.parts[-len(parts):] == parts:
            return Path(*resolved.parts[:-len(parts)])
    return Path.cwd()


def _locate(base: Path, folder: str | None, name: str) -> Path | None:
    if not folder:
        return None
    for candidate in (Path(folder), base / folder):
        if (candidate / name).is_file():
            return candidate / name
    return None


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CharterError(f"{path}: {what} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CharterError(f"{path}: not a readable {what} ({exc})") from None
