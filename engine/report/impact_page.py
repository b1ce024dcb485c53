"""impact.html: the constitution impact report (engine/impact.py) as a page, with the run report's machinery.

It shows the same figures as impact.md (what changed, what it cost, which labels flipped, what the filters now
keep) with plots, and the flipped pairs' texts escaped.
"""

from __future__ import annotations

from typing import Any

from engine.report.page import (
    Html, Section, code, figure, footer_text, join, key_figures, model_text, percent, render_page, table, tag,
)
from engine.report.plots import ACCENT, DROPPED, KEPT, WARN, empty, hbars, plot, svg, vbars

SHIFTS = (("margin", "margin"), ("principle_agreement", "principle agreement"), ("swap_consistency", "swap consistency"))


def impact_html(r: dict[str, Any]) -> str:
    old, new = r["old"], r["new"]
    subtitle = join([f"{old['name']} {old['version']} → {new['name']} {new['version']} on run ", code(r["run"]),
                     f" · judge {r['judge']['model']} ({r['judge']['mode']}, k = {r['judge']['principles_per_pair']})"])
    sections = [_changes(r), _labels(r), _filters(r["filters"]), _flips(r["top_flips"])]
    return render_page("charter constitution impact", subtitle, sections, footer_text())


def _changes(r: dict[str, Any]) -> Section:
    cost, labels, changes = r["cost"], r["labels"], r["labels"]["by_change"]
    kept = f"{r['filters']['kept_before']} → {r['filters']['kept_after']}"
    stats = key_figures([("pairs compared", r["sample"]["pairs"]),
                         ("labels flipped", f"{labels['flips']} ({percent(labels['flip_share'])})"),
                         ("kept by the filters, before → after", kept),
                         ("votes reused / scored", f"{cost['votes_reused']:,} / {cost['votes_scored']:,}"),
                         ("seconds", f"{cost['seconds']:,.1f}")])
    rows = [[c["principle_id"], c["change"], ", ".join(c["fields"]) or "-", "yes" if c["judge_reads"] else "no", c["pairs"],
             c["flips"], c["mean_margin_change"]] for c in changes]
    names = [f"{c['principle_id']} ({c['change']})" for c in changes]
    with plot(height=0.7 + 0.45 * max(1, len(changes)), ncols=2, label="pairs touched and flips per change") as (fig, axes):
        if changes:
            hbars(axes[0], names, [c["pairs"] for c in changes], color=ACCENT)
            hbars(axes[1], names, [c["flips"] for c in changes], color=WARN)
            axes[1].set_yticks([])
        else:
            empty(axes[0], "no principle changed")
            empty(axes[1], "")
        axes[0].set_title("pairs whose votes it touches")
        axes[1].set_title("labels it flipped")
        plotted = figure(svg(fig, "pairs touched and flips per change"),
                         "Per added, edited or removed principle: the pairs that sample it (under the new version; under the "
                         "old one for a removal) and how many of their labels flipped. An edit the judge does not read "
                         "touches nothing.")
    body = [stats, plotted, table(["principle", "change", "fields", "judge reads it", "pairs touched", "flips",
                                   "mean margin change"], rows)]
    return Section("changes", "What changed", "The edit, principle by principle, and what re-judging the run's pairs under "
                   "it cost: votes whose inputs did not change are reused, not scored again.", body)


def _labels(r: dict[str, Any]) -> Section:
    labels, shift = r["labels"], r["shift"]
    shown = [(key, title) for key, title in SHIFTS if (shift.get(key) or {}).get("before") is not None]
    with plot(ncols=max(1, len(shown)), height=2.4, label="measures before and after") as (fig, axes):
        for ax, (key, title) in zip(axes, shown):
            vbars(ax, ["before", "after"], [shift[key]["before"], shift[key]["after"]], colors=[DROPPED, KEPT],
                  fmt="{:.3f}", ylim=None if key == "margin" else (0, 1))
            ax.set_title(f"mean {title}")
        if not shown:
            empty(axes[0], "no measure to compare")
        plotted = figure(svg(fig, "measures before and after"), "Means over the compared pairs under the old and the new "
                         "constitution (a measure the judge method does not produce is left out).")
    stats = key_figures([("flipped a → b", labels["a_to_b"]), ("flipped b → a", labels["b_to_a"]),
                         ("no longer judged", labels["became_unjudged"]), ("newly judged", labels["became_judged"]),
                         ("pairs whose sampled principles changed", labels["pairs_resampled"]),
                         ("mean |p_a change|", shift.get("mean_abs_p_a_change"))])
    return Section("labels", "Labels", "How the judge's labels moved: flips (the other response is now chosen) and the "
                   "shift of margin, principle agreement and swap consistency.", [stats, plotted])


def _filters(f: dict[str, Any]) -> Section:
    rows = [(f"kept → dropped: {k}", v, WARN) for k, v in f["kept_to_dropped"].items()] + \
           [(f"dropped → kept (was {k})", v, KEPT) for k, v in f["dropped_to_kept"].items()] + \
           [(f"reason changed: {k}", v, ACCENT) for k, v in f["reason_changed"].items()]
    with plot(height=0.7 + 0.3 * max(1, len(rows)), label="filter transitions") as (fig, (ax,)):
        if rows:
            hbars(ax, [x[0] for x in rows], [x[1] for x in rows], color=[x[2] for x in rows])
            ax.set_xlabel("pairs")
        else:
            empty(ax, "the filters keep and drop the same pairs, for the same reasons")
        plotted = figure(svg(fig, "filter transitions"), "The run's filter thresholds applied to the compared pairs under "
                         "both versions: pairs that change fate, and dropped pairs whose reason changed.")
    return Section("filters", "Filters", f"Kept before: {f['kept_before']}; kept after: {f['kept_after']}.", [plotted])


def _flips(flips: list[dict[str, Any]]) -> Section:
    body: list[Html] = []
    for f in flips:
        title = (f"pair {f['pair_id']} · {f['chosen_before']} → {f['chosen_after']} · "
                 f"p_a {f['p_a_before']} → {f['p_a_after']}")
        body.append(tag("div", join([tag("h3", title), model_text("prompt", f["prompt"]),
                                     tag("div", join([model_text("response a (original)", f["response_a"]),
                                                      model_text("response b (revision)", f["response_b"])]), class_="pair")]),
                        class_="example"))
    if not flips:
        body.append(tag("p", "No label flipped."))
    return Section("flips", "Flipped pairs that moved most", "The pairs whose preference swung furthest, with their texts "
                   "as the model wrote them.", body)
