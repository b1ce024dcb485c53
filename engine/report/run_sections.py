"""The run report's sections about what the run made: run settings, funnel, length, diversity, examples.

Each section is a function of RunData that returns a Section, or None when the run has no data for it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from engine.filters import REASONS
from engine.report.page import Html, Section, figure, join, key_figures, model_text, notice, paragraph, percent, table, tag
from engine.report.plots import DROPPED, KEPT, MUTED, WARN, data, empty, hbars, plot, svg, vbars
from engine.report.run_data import RunData

SCATTER_POINTS = 2000  # the length plot samples this many pairs at most (seeded)
STAGE_NAMES = {"responses": "respond", "revisions": "critique + revise", "pairs": "pairs", "judged": "judge", "kept": "filter"}


def run_section(data: RunData) -> Section:
    m = data.manifest
    recipe, constitution = m.get("recipe") or {}, m.get("constitution") or {}
    judge = recipe.get("judge")
    k = judge.get("principles") if judge else None
    judge_text = "none (the recipe has no judge section)" if not judge else (
        f"{judge.get('mode', 'pairwise')}, {'every principle' if k == 0 else f'{k} sampled principles'} per pair, "
        f"{'model ' + str(judge['model']) if judge.get('model') else 'the policy model judging'}"
        + (", chain of thought" if judge.get("cot") else ""))
    packages = ", ".join(f"{k} {v}" for k, v in (m.get("packages") or {}).items() if v)
    settings = [
        ("recipe", f"{m.get('recipe_path') or '-'} (name {recipe.get('name', '-')}, seed {recipe.get('seed', '-')})"),
        ("policy model", f"{(m.get('model') or {}).get('name', '-')} on {m.get('backend', '-')}"),
        ("judge", judge_text),
        ("constitution", f"{constitution.get('name', '-')} {constitution.get('version', '-')} "
                         f"(sha256 {str(constitution.get('sha256', '-'))[:12]}, {constitution.get('path', '-')})"),
        ("versions", f"charter {m.get('charter_version', '-')}; {packages}"),
        ("started / finished", f"{_when(m.get('started_at'))} / {_when(m.get('finished_at'), 'not finished')}"),
    ]
    body = [table(["setting", "value"], settings)]
    seen = m.get("constitutions_seen") or []
    if len(seen) > 1:
        listing = "; ".join(f"{c.get('name')} {c.get('version')} ({str(c.get('sha256'))[:12]})" for c in seen)
        body.insert(0, notice(f"This run directory has rows made under {len(seen)} constitutions, oldest first: {listing}."))
    stages = m.get("stages") or {}
    if stages:
        body += [_stage_table(stages, m.get("train") or {}), _stage_plot(stages, m.get("train") or {})]
    if stages and all(s.get("items_done_before") == s.get("items") for n, s in stages.items() if n != "kept"):
        body.append(notice("The last `charter run` found every row already done by an earlier run and resumed them, so "
                           "its stage times are near zero; the earlier runs' times are not kept."))
    return Section("run", "Run", "What was run: the recipe, the models, the constitution every row was made under, "
                   "and how long each stage took (resumed rows cost nothing on a re-run).", body)


def _when(iso: str | None, missing: str = "-") -> str:
    return missing if not iso else iso[:19].replace("T", " ") + " UTC"


def _seconds(value: float | None) -> str | None:
    return None if value is None else f"{value:,.1f}"


def _stage_table(stages: dict[str, dict], train: dict[str, dict]) -> Html:
    rows = []
    for name, s in stages.items():
        seconds, tokens = s.get("seconds") or 0.0, s.get("completion_tokens") or 0
        rows.append([STAGE_NAMES.get(name, name), s.get("rows"), s.get("items", 0) - s.get("items_done_before", 0),
                     s.get("items_done_before"), s.get("errors", 0), s.get("skipped", 0), tokens, _seconds(seconds),
                     _seconds(tokens / seconds) if seconds > 0 and tokens else None])
    for name, info in train.items():
        seconds = info.get("seconds", info.get("eval_seconds"))
        rows.append([f"train {name}" if name != "eval" else "evaluate", None, None, None, None, None, None,
                     _seconds(seconds), None])
    return table(["stage", "rows", "new", "resumed", "failed", "skipped", "tokens", "seconds", "tok/s"], rows)


def _stage_plot(stages: dict[str, dict], train: dict[str, dict]) -> Html:
    names = [STAGE_NAMES.get(n, n) for n in stages] + [f"train {n}" if n != "eval" else "evaluate" for n in train]
    seconds = [s.get("seconds") or 0.0 for s in stages.values()] + \
              [i.get("seconds", i.get("eval_seconds")) or 0.0 for i in train.values()]
    with plot(height=0.5 + 0.28 * len(names), label="seconds per stage") as (fig, (ax,)):
        hbars(ax, names, seconds, fmt="{:,.1f} s")
        ax.set_xlabel("seconds (this run; rows done by an earlier run are not counted)")
        return figure(svg(fig, "seconds per stage"), "Wall time of each stage in the last run.")


def funnel_section(data: RunData) -> Section | None:
    counts = data.counts
    if not {"responses", "pairs", "judged"} & set(counts):
        return None
    rounds = ((data.manifest.get("recipe") or {}).get("critique") or {}).get("rounds")
    revisions = f"revisions ({rounds} round{'s' if rounds != 1 else ''} each)" if rounds else "revisions"
    steps = [("prompts", counts.get("prompts")), ("responses", counts.get("responses")), (revisions, counts.get("revisions")),
             ("candidate pairs", counts.get("pairs"))]
    if data.pairs is not None:
        steps.append(("judged (scored)", int(data.pairs["scored"].sum())))
    if data.filtered:
        steps.append(("kept by the filters", data.filter_report["kept"]))
    steps = [(label, n) for label, n in steps if n is not None]
    with plot(height=0.5 + 0.3 * len(steps), label="funnel") as (fig, (ax,)):
        hbars(ax, [s[0] for s in steps], [s[1] for s in steps],
              color=[KEPT if s[0].startswith("kept") else "#2f6f9f" for s in steps])
        ax.set_xlabel("rows")
        body = [figure(svg(fig, "funnel"), "Rows in each table of the run, from the prompts to the pairs that survived "
                                           "the filters. A revision is made per response and round.")]
    if data.filtered:
        body += [_drops_plot(data.filter_report), _reason_table(data.filter_report)]
    skipped = {n: s.get("skipped") for n, s in (data.manifest.get("stages") or {}).items() if s.get("skipped")}
    if skipped:
        body.append(notice("Rows skipped (stored with a skip_reason, e.g. a request too long for the model's context): "
                           + ", ".join(f"{STAGE_NAMES.get(k, k)} {v}" for k, v in skipped.items())))
    return Section("funnel", "Funnel", "How many rows each stage made and, when the run was filtered, why pairs were "
                   "dropped. A pair is counted under the first filter that drops it, in the order shown.", body)


def _reason_table(report: dict[str, Any]) -> Html:
    """What each filter that dropped something checks, with this run's thresholds: reason codes alone say little."""
    cfg = report.get("config") or {}
    swap = ("a principle changed its pick when the two responses swapped places" if cfg.get("swap_mode") == "all" else
            f"under {cfg.get('min_swap_consistency')} of its principles kept their pick when the responses swapped places")
    meaning = {
        "judge_error": "the judge could not score it",
        "swap_inconsistent": swap,
        "principle_disagreement": f"under {cfg.get('min_principle_agreement')} of its principles agree with its label",
        "weak_preference": f"margin (p_chosen - 0.5) under {cfg.get('min_margin')}: the judge could hardly tell",
        "degenerate": "a side is empty, both sides are the same, or a side was cut off at max_tokens",
        "length_bias": f"chosen/rejected length ratio outside [{cfg.get('min_length_ratio')}, {cfg.get('max_length_ratio')}]",
        "judge_injection": "a response addresses the judge",
        "near_duplicate_prompt": "its prompt nearly repeats the prompt of a kept pair",
        "schema_invalid": "its exported record breaks the pair schema",
    }
    rows = [[reason, meaning.get(reason, ""), n] for reason, n in report["dropped"].items() if n]
    return table(["filter", "drops a pair when", "pairs"], rows)


def _drops_plot(report: dict[str, Any]) -> Html:
    dropped = report["dropped"]
    labels = [*REASONS, "kept"]
    values = [dropped.get(r, 0) for r in REASONS] + [report["kept"]]
    na = {k: v for k, v in (report.get("not_applicable") or {}).items() if v}
    with plot(height=0.5 + 0.26 * len(labels), label="drops per reason") as (fig, (ax,)):
        hbars(ax, labels, values, color=[DROPPED if v == 0 else WARN for v in values[:-1]] + [KEPT])
        ax.set_xlabel(f"pairs (of {report['input']:,} judged)")
        caption = ("Pairs dropped by each filter, in filter order (zero bars are filters that dropped nothing), and the "
                   "pairs kept. They add up to the judged pairs.")
        if na:
            caption += " Checks that do not apply to this judge (no orders or no principles) are passed, not failed: " + \
                       ", ".join(f"{k} ({v:,} pairs)" for k, v in na.items()) + "."
        return figure(svg(fig, "drops per reason"), caption)


def length_section(data: RunData) -> Section | None:
    pairs = data.pairs.filter(pl.col("scored")) if data.pairs is not None else None
    if pairs is None or pairs.height == 0:
        return None
    cfg = (data.filter_report or {}).get("config") or {}
    longer = lambda f: float((f["chosen_chars"] > f["rejected_chars"]).mean()) if f.height else None  # noqa: E731
    kept = pairs.filter(pl.col("table") == "kept") if data.filtered else None
    shares = [("judged pairs", longer(pairs))] + ([("kept pairs", longer(kept))] if kept is not None else [])
    sample = pairs.sample(SCATTER_POINTS, seed=0) if pairs.height > SCATTER_POINTS else pairs
    with plot(width=7.5, height=3.3, ncols=2, label="chosen vs rejected length") as (fig, (scatter, bars)):
        _length_scatter(scatter, sample, data.filtered, cfg)
        vbars(bars, [s[0] for s in shares], [s[1] for s in shares], colors=[DROPPED, KEPT][:len(shares)])
        bars.axhline(0.5, color=MUTED, linestyle="--", linewidth=1)
        bars.set_title("chosen side is the longer one")
        caption = (f"Left: characters of the chosen and the rejected response of each pair"
                   f"{f' ({SCATTER_POINTS:,} sampled of {pairs.height:,})' if pairs.height > SCATTER_POINTS else ''}; "
                   "dashed lines are the length-bias filter's ratio bounds. Right: the share of pairs whose chosen "
                   "response is longer, before and after the filters. Far above half means the labels may reward length.")
        body = [figure(svg(fig, "chosen vs rejected length"), caption)]
    body.insert(0, key_figures([(f"{label}: chosen is longer", percent(v)) for label, v in shares]
                               + [("median chosen / rejected chars", f"{pairs['chosen_chars'].median():,.0f} / "
                                                                     f"{pairs['rejected_chars'].median():,.0f}")]))
    return Section("length", "Length", "Whether the judge simply prefers the longer answer: a dataset whose chosen side "
                   "is nearly always longer teaches length, not the constitution.", body)


def _length_scatter(ax, sample: pl.DataFrame, filtered: bool, cfg: dict[str, Any]) -> None:
    big = sample.height > 500  # many points: drawn as one embedded image, so the SVG stays small
    groups = [("dropped", DROPPED, pl.col("table") == "dropped"), ("kept", KEPT, pl.col("table") == "kept")] if filtered \
        else [("judged", "#2f6f9f", pl.lit(True))]
    for label, color, where in groups:
        part = sample.filter(where)
        data(ax.scatter(part["rejected_chars"], part["chosen_chars"], s=14, color=color, alpha=0.7, label=label,
                        linewidths=0, rasterized=big))
    top = float(max(sample["chosen_chars"].max() or 1, sample["rejected_chars"].max() or 1)) * 1.05
    line = np.array([0, top])
    ax.plot(line, line, color=MUTED, linewidth=0.8)
    for ratio in (cfg.get("min_length_ratio"), cfg.get("max_length_ratio")):
        if ratio:
            ax.plot(line, line * ratio, color=WARN, linewidth=0.8, linestyle="--")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("rejected response (characters)")
    ax.set_ylabel("chosen response (characters)")
    ax.legend(loc="upper left")


def diversity_section(data: RunData) -> Section | None:
    diversity = (data.filter_report or {}).get("diversity")
    if not diversity:
        return None
    cfg = data.filter_report.get("config") or {}
    ratio_key = next((k for k in diversity if k.startswith("distinct_") and k.endswith("gram_ratio")), None)
    ratio = diversity.get(ratio_key) or {}
    checked, kept = diversity.get("prompts_checked", 0), diversity.get("prompts_kept", 0)
    similar = diversity.get("similar_pairs") or {}
    with plot(width=7.5, height=2.6, ncols=2, label="prompt diversity") as (fig, (counts, ratios)):
        hbars(counts, ["prompts checked", "prompts kept", "near-duplicates dropped"], [checked, kept, checked - kept],
              color=["#2f6f9f", KEPT, WARN])
        counts.set_title("distinct prompts")
        if ratio:
            vbars(ratios, ["before", "after"], [ratio.get("checked"), ratio.get("kept")], colors=[DROPPED, KEPT], fmt="{:.3f}")
            ratios.set_title(f"distinct {ratio_key.split('_')[1].replace('gram', '-gram')}s / all")
        else:
            empty(ratios, "no prompts left to measure")
        body = [figure(svg(fig, "prompt diversity"),
                       "Left: the prompts that reached near-duplicate detection (those of pairs that passed the filters "
                       "before it), and how many were kept. Right: distinct word "
                       "n-grams over all n-grams of those prompts (1.0: no n-gram repeats), before and after dropping "
                       "near-duplicates.")]
    off = cfg.get("near_duplicate_threshold") is None and cfg.get("embedding_threshold") is None
    body.insert(0, key_figures([("near-duplicate clusters", diversity.get("near_duplicate_clusters", 0)),
                                ("similar prompt pairs (lexical)", similar.get("lexical", 0)),
                                ("similar prompt pairs (embeddings)", similar.get("embedding", 0))]))
    if off:
        body.insert(0, notice("Near-duplicate detection is off in this run's filter settings (near_duplicate_threshold "
                              "and embedding_threshold are null), so no prompt was compared."))
    return Section("diversity", "Diversity", "Whether the prompts are varied: near-duplicate prompts (MinHash/LSH over "
                   "word n-grams, optionally embeddings) are clustered and one per cluster is kept.", body)


def examples_section(data: RunData) -> Section | None:
    ex = data.examples
    if not any(ex.values()):
        return None
    body: list[Html] = []
    if ex.get("kept"):
        body += [tag("h3", "Kept pairs (the most confident)"), *(_example(r) for r in ex["kept"])]
    if ex.get("dropped"):
        body += [tag("h3", "Dropped pairs (the first of each reason)"), *(_example(r) for r in ex["dropped"])]
    if ex.get("judged"):
        body += [paragraph("The run was not filtered; these are the judged pairs with the largest margins."),
                 *(_example(r) for r in ex["judged"])]
    if ex.get("pairs"):
        body += [paragraph("The run has no judge; these are candidate pairs, the original response beside its revision."),
                 *(_example(r) for r in ex["pairs"])]
    return Section("examples", "Examples", "A few pairs as the dataset holds them. Texts are shown exactly as the model "
                   "wrote them, cut after 1,500 characters.", body)


def _example(row: dict[str, Any]) -> Html:
    side = row.get("chosen_side")
    if side in ("a", "b"):
        chosen, rejected = ("response_a", "response_b") if side == "a" else ("response_b", "response_a")
        names = {"response_a": "original", "response_b": "revision"}
        texts = [model_text(f"chosen ({names[chosen]})", row[chosen]),
                 model_text(f"rejected ({names[rejected]})", row[rejected])]
        numbers = f"p_chosen {row.get('p_chosen'):.3f} · margin {row.get('margin'):.3f}"
    else:
        texts = [model_text("original", row.get("response_a")), model_text("revision", row.get("response_b"))]
        numbers = "not judged" if "p_chosen" not in row else "the judge could not score it"
    title = " · ".join(p for p in (row.get("drop_reason"), f"pair {row.get('pair_id')}", numbers) if p)
    parts = [tag("h3", title)]
    if row.get("drop_detail"):
        parts.append(paragraph(row["drop_detail"], class_="note"))
    parts += [model_text("prompt", row.get("prompt")), tag("div", join(texts), class_="pair")]
    return tag("div", join(parts), class_="example")
