"""The run report's judge sections: how confident and consistent the run's judge was, per principle too, and (when a
`charter judge-eval --report` file is given or kept in the run) how often it agrees with human labels."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from engine.report.page import Html, Section, figure, key_figures, notice, paragraph, percent, table
from engine.report.plots import ACCENT, DROPPED, KEPT, MUTED, WARN, data, empty, hbars, histogram, plot, svg, vbars
from engine.report.run_data import RunData

SHARE_BINS = np.linspace(-0.025, 1.025, 22)  # bars centred on 0, 0.05, ..., 1: each share of k principles lands in one


def judge_section(data: RunData) -> Section | None:
    if data.pairs is None:
        return None
    judge = (data.manifest.get("recipe") or {}).get("judge") or {}
    cfg = (data.filter_report or {}).get("config") or {}
    scored = data.pairs.filter(pl.col("scored"))
    mean = lambda c: scored[c].mean() if scored.height else None  # noqa: E731
    figures = [("pairs scored", scored.height), ("unscored (judge_error)", data.pairs.height - scored.height),
               ("mean p_chosen", mean("p_chosen"))]
    if scored["swap_consistency"].is_not_null().any():  # only what applies to this judge method
        figures.append(("pairs whose every principle kept its pick in both orders",
                        percent(float((scored["swap_consistency"] == 1.0).mean()))))
    if scored["principle_agreement"].is_not_null().any():
        figures.append(("mean principle agreement", mean("principle_agreement")))
    if data.position_bias is not None:
        figures.append(("votes for the first slot (position bias)", percent(data.position_bias)))
    body = [key_figures(figures)]
    if data.position_bias is not None and abs(data.position_bias - 0.5) > 0.25:
        body.append(notice(f"The judge voted for whichever response came first in {percent(data.position_bias)} of its votes: "
                           "its pairwise labels mostly reflect position, not content."))
    body += [_confidence_plot(scored, data.filtered, cfg), _consistency_plot(scored, cfg)]
    if data.principles is not None:
        body += _principle_parts(data.principles, pairwise=data.position_bias is not None)
    elif judge.get("mode") == "reward_model":
        body.append(paragraph("A reward-model judge scores each response once, under no principle and in no order: there is "
                              "no per-principle table, swap consistency or position bias."))
    swapped = scored["swap_consistency"].is_not_null().any() if "swap_consistency" in scored.columns else False
    intro = (f"How the {judge.get('mode', 'pairwise')} judge labelled the pairs: how sure it was (p_chosen, the probability "
             "it gives the side it picked), "
             + ("whether it kept its pick when the two responses swapped places, " if swapped else "")
             + "whether the sampled principles agreed, and what each principle did.")
    return Section("judge", "Judge", intro, body)


def _confidence_plot(scored: pl.DataFrame, filtered: bool, cfg: dict[str, Any]) -> Html:
    with plot(height=2.8, label="p_chosen histogram") as (fig, (ax,)):
        bins = np.linspace(0.5, 1.0, 51)
        if scored.height == 0:
            empty(ax, "no pair was scored")
        elif filtered:
            histogram(ax, scored["p_chosen"].to_numpy(), bins, color=DROPPED, label="all judged pairs")
            histogram(ax, scored.filter(pl.col("table") == "kept")["p_chosen"].to_numpy(), bins, color=KEPT, label="kept")
            ax.legend(loc="upper right")
        else:
            histogram(ax, scored["p_chosen"].to_numpy(), bins)
        if cfg.get("min_margin") is not None:
            ax.axvline(0.5 + cfg["min_margin"], color=WARN, linestyle="--", linewidth=1)
        ax.set_xlim(0.5, 1.0)
        ax.set_xlabel("p_chosen: the judge's probability for the side it picked")
        ax.set_ylabel("pairs")
        top = ax.secondary_xaxis("top", functions=(lambda p: p - 0.5, lambda m: m + 0.5))
        top.set_xlabel("margin = p_chosen - 0.5")
        caption = ("Pairs by the judge's confidence. Near 0.5 the judge could hardly tell the two responses apart"
                   + (f"; the dashed line is the weak-preference filter (margin {cfg['min_margin']})." if cfg.get("min_margin")
                      is not None else "."))
        return figure(svg(fig, "p_chosen histogram"), caption)


def _consistency_plot(scored: pl.DataFrame, cfg: dict[str, Any]) -> Html:
    with plot(width=7.5, height=2.5, ncols=2, label="swap consistency and principle agreement") as (fig, axes):
        parts = [("swap_consistency", "swap consistency (share of principles)", cfg.get("min_swap_consistency"),
                  "does not apply: this judge asks no question in two orders"),
                 ("principle_agreement", "principle agreement", cfg.get("min_principle_agreement"),
                  "does not apply: this judge uses no principles")]
        for ax, (column, title, threshold, why) in zip(axes, parts):
            values = scored[column].drop_nulls().to_numpy()
            if values.size == 0:
                empty(ax, why)
                ax.set_title(title)
                continue
            histogram(ax, values, SHARE_BINS, color=ACCENT)
            if threshold is not None and (column != "swap_consistency" or cfg.get("swap_mode") == "share"):
                ax.axvline(threshold - 0.025, color=WARN, linestyle="--", linewidth=1)
            ax.set_xlim(-0.03, 1.03)
            ax.set_title(title)
            ax.set_ylabel("pairs")
        return figure(svg(fig, "swap consistency and principle agreement"),
                      "Left: per pair, the share of its principles that picked the same response in both orders (1.0: "
                      "no principle changed its mind when the responses swapped places). Right: the share of principles "
                      "on the side of the pair's overall label. Dashed: the filter's minimum, where one applies "
                      "(bars right of it pass).")


def _principle_parts(principles: pl.DataFrame, pairwise: bool) -> list[Html]:
    rows = principles.sort("prefers_revision", descending=True)
    with plot(height=0.6 + 0.22 * rows.height, label="share preferring the revision per principle") as (fig, (ax,)):
        hbars(ax, rows["principle_id"].to_list(), rows["prefers_revision"].fill_null(0).to_list(), color=ACCENT,
              fmt="{:.0%}", xmax=1.0)
        ax.axvline(0.5, color=MUTED, linestyle="--", linewidth=1)
        ax.set_xlabel("share of judged pairs where this principle preferred the revision")
        plotted = figure(svg(fig, "share preferring the revision per principle"),
                         "Per principle, how often its vote preferred the revised response over the original. A principle "
                         "near 50% could not tell them apart; one at 0% or 100% may be reading something other "
                         "than its question.")
    headers = ["principle", "votes", "errors", "pairs", "prefers revision", "agrees with the pair's label"]
    headers += ["swap consistency", "votes for the first slot"] if pairwise else []  # only asked in two orders
    body = [[r["principle_id"], r["votes"], r["errors"], r["pairs"], percent(r["prefers_revision"]), percent(r["agreement"])]
            + ([percent(r["swap_consistency"]), percent(r["first_slot"])] if pairwise else [])
            for r in principles.iter_rows(named=True)]
    return [plotted, table(headers, body, caption="Per principle (pairs: those where it was scored in full)")]


def judge_eval_section(data: RunData) -> Section | None:
    r = data.judge_eval
    if r is None:
        return None
    ci = r.get("accuracy_ci95")
    judge = r.get("judge") or {}
    body = [key_figures([("human-labelled pairs", r.get("pairs", "-")), ("judge accuracy", percent(r.get("accuracy"))),
                         ("95% interval", f"{percent(ci[0])} - {percent(ci[1])}" if ci else "-"),
                         ("votes for the first slot", percent(r.get("position_bias_first_slot")))]),
            paragraph(f"Judge {judge.get('model', '-')} ({judge.get('mode', '-')}, {judge.get('backend', '-')}) on "
                      f"{r.get('source', 'a labelled file')}.", class_="note")]
    labels = ["judge", "judge (order flips = ties)", "always the longer", "always the shorter"]
    values = [r.get("accuracy"), r.get("accuracy_with_ties"), r.get("length_baseline"), r.get("shorter_baseline")]
    with plot(width=7.5, height=2.9, ncols=2, label="judge accuracy and reliability") as (fig, (bars, curve)):
        vbars(bars, labels, values, colors=[ACCENT, ACCENT, DROPPED, DROPPED])
        if ci:
            bars.errorbar([0], [r["accuracy"]], yerr=[[r["accuracy"] - ci[0]], [ci[1] - r["accuracy"]]], color="black",
                          capsize=4, linewidth=1)
        bars.axhline(r.get("chance", 0.5), color=WARN, linestyle="--", linewidth=1)
        bars.set_title("agreement with human labels")
        bars.tick_params(axis="x", labelrotation=20, labelsize=7)
        _reliability(curve, r.get("reliability"))
        body.append(figure(svg(fig, "judge accuracy and reliability"),
                           "Left: the share of human-labelled pairs where the judge picked the human-chosen response, beside "
                           "always picking the longer or the shorter one; dashed: chance. A judge no better than a length "
                           "baseline is not reading quality. Right: pairs binned by the judge's confidence (p_chosen), against "
                           "how often its pick agreed with people; a calibrated judge follows the diagonal."))
    if not r.get("reliability"):
        body.append(notice("This judge-eval report has no reliability bins (`reliability`), so the curve is empty."))
    return Section("judge-eval", "Judge evaluation", "How often this judge agrees with people on a human-labelled "
                   "preference file (`charter judge-eval --report`), beside the length baselines and chance.", body)


def _reliability(ax, bins: list[dict[str, Any]] | None) -> None:
    ax.set_title("reliability")
    if not bins:
        empty(ax, "no reliability bins in the report")
        return
    x = [b.get("mean_p_chosen", (b["lo"] + b["hi"]) / 2) for b in bins]
    y = [b["agreement"] for b in bins]
    ax.plot([0.5, 1.0], [0.5, 1.0], color=MUTED, linestyle="--", linewidth=1)
    data(ax.plot(x, y, marker="o", color=ACCENT))
    for xi, yi, b in zip(x, y, bins):
        ax.annotate(f"{b['pairs']}", (xi, yi), textcoords="offset points", xytext=(0, 5), ha="center", fontsize=7)
    ax.set_xlim(0.5, 1.0)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("judge's p_chosen (bin mean; labels: pairs)")
    ax.set_ylabel("agrees with people")
