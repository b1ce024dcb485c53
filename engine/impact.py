"""`charter constitution impact OLD NEW --run RUN`: what a constitution edit does to a run's labels, cheaply.

The run's judged pairs (a seeded sample, or all) are judged again under NEW with the run's own judge
(model, backend, mode, k, seed). A vote is reused from the run when its inputs did not change: same
pair, same principle id, and the same text of what that judge method reads from the constitution
(`vote_inputs`: the comparison question and judge section for pairwise, the yes/no check for
pointwise, nothing for a reward model). So only edited principles, and principles a pair newly samples,
cost model calls. The judge's per-pair sample is stable under additions and removals (each principle's
draw depends only on its own id: engine.judges.sample_principles), so adding a principle re-scores only the
pairs whose top k it enters, and removing one only the pairs that had it.

The report says which labels flipped (overall and per added / edited / removed principle), how margin,
principle agreement and swap consistency moved, and which pairs the run's filters now keep or drop.
Nothing in the run directory changes: impact reads it, and writes only under its output folder, where
the votes it scored are kept in shards, so an interrupted impact resumes.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import polars as pl

from engine.backends import UNAVAILABLE, Backend
from engine.config import JudgeConfig, filter_config, judge_config
from engine.constitution import PRINCIPLE_TEXT_FIELDS, Constitution, load_constitution
from engine.errors import CharterError
from engine.filters import apply_filters
from engine.judges import ONLY_PRINCIPLES, JudgeMethod, judge_method, orient, sample_principles, vote_inputs
from engine.keys import stable_hash
from engine.models import resolve_model
from engine.report.impact_page import impact_html
from engine.stages import StageContext
from engine.stages.judge import Judge
from engine.store import KEY, RunStore, write_json_atomic, write_parquet_atomic, write_text_atomic

# The columns judge_pairs/orient add to a pair; impact recomputes them under the new constitution.
JUDGE_COLUMNS = ("p_a", "swap_consistent", "swap_consistency", "principle_agreement", "n_principles_scored", "votes",
                 "chosen_side", "chosen", "rejected", "p_chosen", "margin", "judge_error")
VOTES = "impact_votes"  # shard folder in the output directory: the votes scored so far (resume)
TOP_FLIPS = 10


@dataclass(frozen=True)
class Change:
    principle_id: str
    change: str  # added | edited | removed
    fields: tuple[str, ...]  # text fields that differ (edited only)
    judge_reads: bool  # whether the run's judge method reads what changed (else its votes are reused)


@dataclass(frozen=True)
class RunJudge:
    """The run's judge, as its manifest recorded it."""

    cfg: JudgeConfig
    method: JudgeMethod
    kind: str  # backend kind
    model_name: str  # as the recipe names it
    model_path: Path
    seed: int
    filter_raw: dict | None


@dataclass
class Impact:
    report: dict[str, Any]
    out_dir: Path
    rejudged: pl.DataFrame  # the sample judged under NEW


def principle_changes(old: Constitution, new: Constitution, method: JudgeMethod) -> list[Change]:
    """Added, edited and removed principles (by id), and whether the judge reads the edit."""
    before, after = {p.id: p for p in old.principles}, {p.id: p for p in new.principles}
    changes = [Change(i, "removed", (), True) for i in before if i not in after]
    for i, p in after.items():
        if i not in before:
            changes.append(Change(i, "added", (), True))
            continue
        fields = tuple(f for f in PRINCIPLE_TEXT_FIELDS + ("tags", "weight") if getattr(before[i], f) != getattr(p, f))
        reads = vote_inputs(method, old, before[i]) != vote_inputs(method, new, p)
        if fields or reads:
            changes.append(Change(i, "edited", fields, reads))
    return changes


def run_judge(manifest: dict, run_dir: Path) -> RunJudge:
    """The judge the run used, rebuilt from its manifest's recipe."""
    recipe = manifest.get("recipe") or {}
    where = str(run_dir / "manifest.json")
    if not recipe.get("judge"):
        raise CharterError(f"{where}: the run's recipe has no judge section; impact re-judges judged pairs")
    backend = recipe.get("backend", "vllm")
    cfg = judge_config(recipe["judge"], where, backend, recipe.get("backend_options"))
    model_name = cfg.model or recipe.get("model")
    return RunJudge(cfg=cfg, method=judge_method(cfg.mode), kind=cfg.backend_kind(backend), model_name=model_name,
                    model_path=resolve_model(model_name), seed=int(recipe.get("seed", 0)), filter_raw=recipe.get("filter"))


def judged_sample(run_dir: Path, old: Constitution, sample: int | None, seed: int) -> tuple[pl.DataFrame, dict[str, int]]:
    """The run's pairs judged under OLD (a seeded sample of `sample` of them, in table order), and the
    number of judged rows per constitution hash (rows under another constitution are left out)."""
    judged = RunStore(run_dir, writer=False).read("judged")
    if "skip_reason" in judged.columns:
        judged = judged.filter(pl.col("skip_reason").is_null())
    hashes = dict(judged.group_by("constitution_sha256").len().iter_rows())
    rows = judged.filter(pl.col("constitution_sha256") == old.sha256)
    if rows.height == 0:
        seen = ", ".join(f"{h[:12]} ({n} pairs)" for h, n in hashes.items()) or "none"
        raise CharterError(f"{run_dir}: no judged pairs were made under {old.path} (sha256 {old.sha256[:12]}); the run's "
                           f"judged pairs were made under: {seen}. Give the constitution the run used as OLD")
    if sample is not None and sample < rows.height:
        rows = rows.with_row_index("_i").sample(sample, seed=seed).sort("_i").drop("_i")
    return rows, hashes


def plan_votes(rows: pl.DataFrame, old: Constitution, new: Constitution, rj: RunJudge, rescore_all: bool) -> pl.DataFrame:
    """Per pair: the principles it had (old), the ones NEW samples for it, which of those votes can be reused,
    and which must be scored."""
    method, k, seed = rj.method, rj.cfg.principles, rj.seed
    before, after = {p.id: p for p in old.principles}, {p.id: p for p in new.principles}
    same = {i for i in after if i in before and vote_inputs(method, old, before[i]) == vote_inputs(method, new, after[i])}
    old_ids = [_principles_voted(v) for v in rows["votes"].to_list()]
    per_principle = any(ids is not None for ids in old_ids)  # a reward model votes once per side, under no principle
    plan = {"pair_id": [], "old_principles": [], "new_principles": [], "reused": [], ONLY_PRINCIPLES: []}
    for pair_id, had in zip(rows["pair_id"], old_ids):
        had = had or []
        wanted = [p.id for p in sample_principles(new, k, pair_id, seed)] if per_principle else []
        reuse = [] if rescore_all else [i for i in wanted if i in had and i in same]
        plan["pair_id"].append(pair_id)
        plan["old_principles"].append(had)
        plan["new_principles"].append(wanted)
        plan["reused"].append(reuse)
        plan[ONLY_PRINCIPLES].append([i for i in wanted if i not in reuse])
    frame = pl.DataFrame(plan, schema={"pair_id": pl.String, **{c: pl.List(pl.String) for c in list(plan)[1:]}})
    if not per_principle:  # nothing to re-score unless asked to: the votes read no principle text
        frame = frame.with_columns(pl.lit(rescore_all).alias("rescore_pair"))
    else:
        frame = frame.with_columns((pl.col(ONLY_PRINCIPLES).list.len() > 0).alias("rescore_pair"))
    return frame


def _principles_voted(votes: list[dict] | None) -> list[str] | None:
    """The principle ids of a pair's stored votes, in first-seen order; None when its votes have none."""
    ids = [v.get("principle_id") for v in votes or []]
    if not ids or all(i is None for i in ids):
        return None
    return list(dict.fromkeys(i for i in ids if i is not None))


def score_votes(todo: pl.DataFrame, rj: RunJudge, new: Constitution, store: RunStore, backend: Callable[[], Backend],
                config_hash: str, chunk_size: int, progress: Callable[[int, int], None] | None) -> tuple[pl.DataFrame, int]:
    """Score the planned votes chunk by chunk, each chunk stored as one shard in the output folder, so a stopped
    impact resumes; returns all of them and how many were scored by this call."""
    keyed = todo.with_columns(pl.Series(KEY, [stable_hash("impact", pid, ids, config_hash)
                                              for pid, ids in zip(todo["pair_id"], todo[ONLY_PRINCIPLES].to_list())],
                                        dtype=pl.String))
    done = store.done_keys(VOTES)
    left = keyed.filter(~pl.col(KEY).is_in(list(done)))
    scored, failed = 0, 0
    if progress:
        progress(keyed.height - left.height, keyed.height)
    for chunk in left.iter_slices(chunk_size):
        items = chunk.drop(ONLY_PRINCIPLES) if chunk[ONLY_PRINCIPLES].list.len().max() == 0 else chunk
        votes = rj.method.votes(items, backend(), rj.cfg, new, rj.seed)
        scored += votes.height
        keys = chunk.select("pair_id", KEY)
        stored = votes.join(keys, on="pair_id", how="left").rename({"error": "vote_error"})
        unavailable = stored.filter(pl.col("vote_error").str.starts_with(UNAVAILABLE).fill_null(False))[KEY].unique()
        failed += len(unavailable)
        stored = stored.filter(~pl.col(KEY).is_in(unavailable.implode()))
        if stored.height:
            store.write_shard(VOTES, stored)
        if progress:
            progress(chunk.height, keyed.height)
    if failed:
        raise CharterError(f"{failed} pair(s) could not be judged (the judge model was unavailable); the votes scored "
                           f"so far are kept in {store.shard_dir(VOTES)}: run the same command again to finish")
    stored = store.shard_rows(VOTES)
    if stored is None or keyed.height == 0:
        return pl.DataFrame(), scored
    votes = stored.join(keyed.select(KEY).lazy(), on=KEY, how="semi").collect()
    return votes.drop(KEY).rename({"vote_error": "error"}), scored


def reused_votes(rows: pl.DataFrame, plan: pl.DataFrame) -> pl.DataFrame:
    """The run's stored votes that the plan reuses, as a long table (pair_id + the method's vote fields)."""
    long = rows.select("pair_id", "votes").explode("votes").filter(pl.col("votes").is_not_null()).unnest("votes")
    if "principle_id" in long.columns and long["principle_id"].is_not_null().any():
        wanted = plan.select("pair_id", pl.col("reused").alias("principle_id")).explode("principle_id")
        return long.join(wanted, on=["pair_id", "principle_id"], how="semi", maintain_order="left")
    # votes under no principle (a reward model): a pair's votes are reused whole, unless it is re-scored
    return long.join(plan.filter(~pl.col("rescore_pair")).select("pair_id"), on="pair_id", how="semi", maintain_order="left")


def rejudge(rows: pl.DataFrame, votes: pl.DataFrame, rj: RunJudge, new: Constitution, config_hash: str) -> pl.DataFrame:
    """The sample's rows as the judge stage would have written them under NEW, from the combined votes."""
    items = rows.drop([c for c in JUDGE_COLUMNS if c in rows.columns])
    fresh = orient(items, rj.method.aggregate(votes), votes)
    return fresh.with_columns(
        pl.lit(new.version).alias("constitution_version"),
        pl.lit(new.sha256).alias("constitution_sha256"),
        pl.lit(config_hash).alias("judge_config_hash"),
    ).select(rows.columns)


def constitution_impact(
    old_path: str | Path, new_path: str | Path, run_dir: str | Path, *, out_dir: str | Path | None = None,
    sample: int | None = None, seed: int = 0, rescore_all: bool = False, backend: Backend | None = None,
    chunk_size: int = 64, progress: Callable[[int, int], None] | None = None,
) -> Impact:
    """Judge the run's pairs again under NEW, reusing every vote whose inputs did not change; report the effect.

    `backend` reuses a loaded judge engine (else the run's judge is loaded on first need, and not at all when
    every vote is reused). `rescore_all` scores every vote again: what a full re-judge costs, for comparison.
    """
    start = time.perf_counter()
    run_dir = Path(run_dir)
    old, new = load_constitution(old_path), load_constitution(new_path)
    if not (run_dir / "manifest.json").is_file():
        raise CharterError(f"{run_dir}: not a run directory (no manifest.json)")
    manifest = RunStore(run_dir, writer=False).read_manifest()
    rj = run_judge(manifest, run_dir)
    out = Path(out_dir) if out_dir is not None else Path(f"impact-{run_dir.name}-{old.sha256[:8]}-{new.sha256[:8]}")
    if out.resolve() == run_dir.resolve() or run_dir.resolve() in out.resolve().parents:
        raise CharterError(f"{out}: the output folder is inside the run directory; impact never writes there. Choose another --out")
    rows, hashes = judged_sample(run_dir, old, sample, seed)
    fcfg = filter_config(rj.filter_raw, str(run_dir / "manifest.json"))
    ctx = StageContext(model=rj.model_name, backend=rj.kind, seed=rj.seed, constitution=new)
    config_hash = Judge(rj.cfg, rj.model_name, rj.kind, ctx).config_hash

    plan = plan_votes(rows, old, new, rj, rescore_all)
    todo = rows.join(plan.filter("rescore_pair").select("pair_id", ONLY_PRINCIPLES), on="pair_id", how="inner",
                     maintain_order="left").select("pair_id", "prompt", *(["conversation"] if "conversation" in rows.columns else []),
                                                   "response_a", "response_b", ONLY_PRINCIPLES)
    loaded: list[Backend] = []

    def engine_() -> Backend:
        if backend is not None:
            return backend
        if not loaded:
            from engine.backends import load_backend

            loaded.append(load_backend(rj.kind, str(rj.model_path), rj.cfg.backend_options, rj.seed))
        return loaded[0]

    with RunStore(out) as store:
        try:
            scored, n_scored = score_votes(todo, rj, new, store, engine_, config_hash, chunk_size, progress)
        finally:
            if loaded:
                from engine.backends import close_backend

                close_backend(loaded[0])
        reused = reused_votes(rows, plan)
        votes = pl.concat([v for v in (reused, scored) if v.height], how="diagonal_relaxed")
        after = rejudge(rows, votes, rj, new, config_hash)
        outcomes = filter_outcomes(rows, after, fcfg)
        seconds = time.perf_counter() - start
        report = impact_report(rows, after, plan, old, new, rj, outcomes, hashes, sample, seed, run_dir,
                               reused=reused.height, scored_total=scored.height, scored_now=n_scored, seconds=seconds,
                               rescore_all=rescore_all)
        write_parquet_atomic(after, store.root / "rejudged.parquet")
        write_parquet_atomic(outcomes, store.root / "transitions.parquet")
        write_json_atomic(report, store.root / "impact.json")
        write_text_atomic(impact_markdown(report), store.root / "impact.md")
        write_text_atomic(impact_html(report), store.root / "impact.html")
    return Impact(report, out, after)


def impact_report(before: pl.DataFrame, after: pl.DataFrame, plan: pl.DataFrame, old: Constitution, new: Constitution,
                  rj: RunJudge, outcomes: pl.DataFrame, hashes: dict[str, int], sample: int | None, seed: int, run_dir: Path, *,
                  reused: int, scored_total: int, scored_now: int, seconds: float, rescore_all: bool) -> dict[str, Any]:
    changes = principle_changes(old, new, rj.method)
    pairs = _side_by_side(before, after).join(plan, on="pair_id", how="left")
    flips = pairs.filter(pl.col("flipped"))
    calls_per_vote = 2 if rj.cfg.cot else 1  # chain of thought: the reasoning, then the scored token
    return {
        "run": str(run_dir),
        "old": _describe(old),
        "new": _describe(new),
        "judge": {"mode": rj.cfg.mode, "model": rj.model_name, "backend": rj.kind, "principles_per_pair": rj.cfg.principles,
                  "seed": rj.seed},
        "changes": [dataclasses.asdict(c) | {"fields": list(c.fields)} for c in changes],
        "sample": {"pairs": before.height, "judged_under_old": hashes.get(old.sha256, 0),
                   "judged_under_other_constitutions": sum(n for h, n in hashes.items() if h != old.sha256),
                   "requested": sample, "seed": seed},
        "cost": {
            "votes": reused + scored_total, "votes_reused": reused, "votes_scored": scored_total,
            "votes_scored_by_this_call": scored_now, "model_calls": scored_now * calls_per_vote,
            "pairs_rescored": int(plan["rescore_pair"].sum()), "seconds": round(seconds, 2), "rescore_all": rescore_all,
        },
        "labels": {
            "flips": flips.height,
            "flip_share": _share(flips.height, pairs.filter(pl.col("side_before").is_not_null()).height),
            "a_to_b": flips.filter(pl.col("side_before") == "a").height,
            "b_to_a": flips.filter(pl.col("side_before") == "b").height,
            "became_unjudged": pairs.filter(pl.col("side_before").is_not_null() & pl.col("side_after").is_null()).height,
            "became_judged": pairs.filter(pl.col("side_before").is_null() & pl.col("side_after").is_not_null()).height,
            "pairs_resampled": pairs.filter(pl.col("old_principles").list.sort() != pl.col("new_principles").list.sort()).height
            if pairs["old_principles"].list.len().sum() else 0,
            "by_change": [_change_effect(c, pairs) for c in changes],
        },
        "shift": {name: _shift(pairs, name) for name in ("margin", "principle_agreement", "swap_consistency")}
        | {"mean_abs_p_a_change": _round(pairs.select((pl.col("p_a_after") - pl.col("p_a_before")).abs().mean()).item())},
        "filters": _filter_transitions(outcomes),
        "top_flips": _top_flips(flips),
    }


def _side_by_side(before: pl.DataFrame, after: pl.DataFrame) -> pl.DataFrame:
    cols = ("p_a", "margin", "principle_agreement", "swap_consistency", "chosen_side")
    left = before.select("pair_id", "prompt", "response_a", "response_b", *[pl.col(c).alias(f"{c}_before") for c in cols])
    right = after.select("pair_id", *[pl.col(c).alias(f"{c}_after") for c in cols])
    return left.join(right, on="pair_id", how="left", maintain_order="left").rename(
        {"chosen_side_before": "side_before", "chosen_side_after": "side_after"}).with_columns(
        (pl.col("side_before").is_not_null() & pl.col("side_after").is_not_null()
         & (pl.col("side_before") != pl.col("side_after"))).alias("flipped"))


def _change_effect(change: Change, pairs: pl.DataFrame) -> dict[str, Any]:
    """The pairs a change touches (added/edited: sampled under NEW; removed: sampled under OLD) and their flips."""
    column = "old_principles" if change.change == "removed" else "new_principles"
    touched = pairs.filter(pl.col(column).list.contains(change.principle_id))
    if change.change == "edited" and not change.judge_reads:
        touched = touched.clear()  # the judge does not read what changed: those votes were reused as they were
    return {
        "principle_id": change.principle_id, "change": change.change, "fields": list(change.fields), "judge_reads": change.judge_reads,
        "pairs": touched.height,
        "flips": touched.filter(pl.col("flipped")).height,
        "mean_margin_change": _round(touched.select((pl.col("margin_after") - pl.col("margin_before")).mean()).item())
        if touched.height else None,
    }


def _shift(pairs: pl.DataFrame, name: str) -> dict[str, float | None]:
    before, after = pairs[f"{name}_before"], pairs[f"{name}_after"]
    return {"before": _round(before.mean()), "after": _round(after.mean()), "mean_change": _round((after - before).mean())}


def filter_outcomes(before: pl.DataFrame, after: pl.DataFrame, fcfg) -> pl.DataFrame:
    """Per pair, the filters' verdict (drop reason, null = kept) under the old and the new labels, with the run's
    thresholds: pair_id, reason_before, reason_after."""
    outcome = {}
    for name, rows in (("before", before), ("after", after)):
        result = apply_filters(rows, fcfg)
        outcome[name] = pl.concat([result.kept.select("pair_id", pl.lit(None, dtype=pl.String).alias("drop_reason")),
                                   result.dropped.select("pair_id", "drop_reason")]).rename({"drop_reason": f"reason_{name}"})
    return outcome["before"].join(outcome["after"], on="pair_id", how="full", coalesce=True).sort("pair_id")


def _filter_transitions(both: pl.DataFrame) -> dict[str, Any]:
    """Counts of the pairs whose fate or drop reason changed (the pairs themselves are in transitions.parquet)."""
    kept_before, kept_after = pl.col("reason_before").is_null(), pl.col("reason_after").is_null()

    def counts(frame: pl.DataFrame, column: str) -> dict[str, int]:
        return dict(sorted(frame.group_by(column).len().iter_rows(), key=lambda kv: (-kv[1], kv[0])))

    changed = both.filter(~kept_before & ~kept_after & (pl.col("reason_before") != pl.col("reason_after")))
    return {
        "kept_before": both.filter(kept_before).height,
        "kept_after": both.filter(kept_after).height,
        "kept_to_dropped": counts(both.filter(kept_before & ~kept_after), "reason_after"),
        "dropped_to_kept": counts(both.filter(~kept_before & kept_after), "reason_before"),
        "reason_changed": counts(changed.select(pl.format("{} -> {}", "reason_before", "reason_after").alias("r")), "r"),
    }


def _top_flips(flips: pl.DataFrame) -> list[dict[str, Any]]:
    """The flipped pairs whose preference moved most: |p_a after - p_a before| (old margin + new margin)."""
    top = flips.with_columns((pl.col("p_a_after") - pl.col("p_a_before")).abs().alias("swing")).sort(
        "swing", "pair_id", descending=[True, False]).head(TOP_FLIPS)
    return [{"pair_id": r["pair_id"], "prompt": r["prompt"], "response_a": r["response_a"], "response_b": r["response_b"],
             "chosen_before": r["side_before"], "chosen_after": r["side_after"], "p_a_before": _round(r["p_a_before"]),
             "p_a_after": _round(r["p_a_after"]), "swing": _round(r["swing"]),
             "principles_before": r["old_principles"], "principles_after": r["new_principles"]} for r in top.iter_rows(named=True)]


def _describe(c: Constitution) -> dict[str, str]:
    return {"path": c.path, "name": c.name, "version": c.version, "sha256": c.sha256}


def _share(n: int, of: int) -> float | None:
    return round(n / of, 4) if of else None


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 4)


def impact_markdown(r: dict[str, Any]) -> str:
    """The report as a page a person reads: what changed, what it cost, what flipped, what the filters now do."""
    old, new, cost, labels, filters = r["old"], r["new"], r["cost"], r["labels"], r["filters"]
    lines = [
        f"# Constitution impact: {old['name']} {old['version']} → {new['name']} {new['version']}", "",
        f"Run `{r['run']}`; judge `{r['judge']['model']}` ({r['judge']['backend']}, mode {r['judge']['mode']}, "
        f"k = {r['judge']['principles_per_pair']}, seed {r['judge']['seed']}). "
        f"{r['sample']['pairs']} pairs of the {r['sample']['judged_under_old']} judged under the old version.", "",
        "## What changed", "",
        "| principle | change | fields | judge reads it | pairs touched | flips | mean margin change |", "|---|---|---|---|---:|---:|---:|",
        *(f"| {c['principle_id']} | {c['change']} | {', '.join(c['fields']) or '-'} | {'yes' if c['judge_reads'] else 'no'} | "
          f"{c['pairs']} | {c['flips']} | {_fmt(c['mean_margin_change'])} |" for c in labels["by_change"]),
        "", "## Cost", "",
        f"{cost['votes']} votes: {cost['votes_reused']} reused from the run, {cost['votes_scored']} scored "
        f"({cost['model_calls']} model calls in this call; {cost['seconds']} s)."
        + (" Every vote was scored again (a full re-judge)." if cost["rescore_all"] else ""), "",
        "## Labels", "",
        f"- flips: **{labels['flips']}** ({_pct(labels['flip_share'])} of judged pairs): a→b {labels['a_to_b']}, "
        f"b→a {labels['b_to_a']}",
        f"- no longer judged: {labels['became_unjudged']}; newly judged: {labels['became_judged']}",
        f"- pairs whose sampled principles changed: {labels['pairs_resampled']}", "",
        "| measure | before | after | mean change |", "|---|---:|---:|---:|",
        *(f"| {name} | {_fmt(s['before'])} | {_fmt(s['after'])} | {_fmt(s['mean_change'])} |"
          for name, s in r["shift"].items() if isinstance(s, dict)),
        "", "## Filters (the run's thresholds, on this sample)", "",
        f"Kept before: {filters['kept_before']}; kept after: {filters['kept_after']}.", "",
        "| transition | reason | pairs |", "|---|---|---:|",
        *(f"| kept → dropped | {reason} | {n} |" for reason, n in filters["kept_to_dropped"].items()),
        *(f"| dropped → kept | {reason} | {n} |" for reason, n in filters["dropped_to_kept"].items()),
        *(f"| reason changed | {reason} | {n} |" for reason, n in filters["reason_changed"].items()),
        "", "## Flipped pairs that moved most", "",
    ]
    if not r["top_flips"]:
        lines.append("No label flipped.")
    for f in r["top_flips"]:
        lines += [f"### {f['pair_id']}: {f['chosen_before']} → {f['chosen_after']} (p_a {f['p_a_before']} → {f['p_a_after']})", "",
                  _quote("prompt", f["prompt"]), _quote("response a", f["response_a"]), _quote("response b", f["response_b"]), ""]
    return "\n".join(lines) + "\n"


def _quote(label: str, text: str) -> str:
    """Model text as a fenced block: shown as written, never read as Markdown or HTML."""
    import re

    fence = "`" * max([3] + [len(run) + 1 for run in re.findall(r"`{3,}", text)])
    return f"**{label}**\n\n{fence}text\n{text}\n{fence}\n"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:+.4f}" if value < 0 else f"{value:.4f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"
