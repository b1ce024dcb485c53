"""The run report's training section: what the trainers logged, the reward model's accuracy beside its length
baseline, the policy's win rate and the reward-hacking monitors (length, refusals, KL), from the files that
`charter run` leaves when its recipe has a `train:` section."""

from __future__ import annotations

from typing import Any

from engine.report.page import Html, Section, figure, key_figures, notice, percent
from engine.report.plots import ACCENT, DROPPED, KEPT, WARN, data, empty, plot, svg, vbars
from engine.report.run_data import RunData

# (plot title, the log keys that hold it: reward model / DPO first, then PPO / GRPO / RLOO)
CURVES = (("loss", ("loss", "loss/policy_avg")), ("reward margin (chosen - rejected)", ("rewards/margins", "margin")),
          ("reward / score", ("objective/scores", "reward")), ("KL to the reference", ("objective/kl", "kl")))


def training_section(data: RunData) -> Section | None:
    t = data.training
    if t is None:
        return None
    body: list[Html] = []
    if t["trainers"]:
        body.append(_curves(t["trainers"]))
    if t.get("reward_eval"):
        body.append(_reward_accuracy(t["reward_eval"]))
    if t.get("policy_eval"):
        body += _policy_eval(t["policy_eval"])
    if t["missing"]:
        body.append(notice("Training records not found (moved or deleted?): " + "; ".join(t["missing"])))
    return Section("training", "Training and evaluation", "What training on the exported pairs did: the trainers' logged "
                   "loss and reward margin, the reward model's accuracy on held-out pairs, and whether the trained policy "
                   "beats the model it started from without drifting toward longer answers, refusals or far from it.", body)


def _series(log: list[dict[str, Any]], keys: tuple[str, ...]) -> tuple[list[float], list[float]]:
    """(steps, values) of the first of `keys` logged per step; the closing summary entry (train_runtime, ...) is not a step."""
    steps = [e for e in log if "step" in e and "train_runtime" not in e]
    key = next((k for k in keys if any(k in e for e in steps)), None)
    points = [(e["step"], e[key]) for e in steps if key and e.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def _curves(trainers: dict[str, dict[str, Any]]) -> Html:
    shown = [(title, keys) for title, keys in CURVES if any(_series(t["log"], keys)[0] for t in trainers.values())]
    final_only = {name: t for name, t in trainers.items() if not _series(t["log"], CURVES[0][1])[0]}
    shown = shown or [CURVES[0]]
    with plot(width=7.5, height=2.6, ncols=len(shown), label="training curves") as (fig, axes):
        for ax, (title, keys) in zip(axes, shown):
            for name, t in trainers.items():
                steps, values = _series(t["log"], keys)
                if steps:
                    data(ax.plot(steps, values, marker="o", markersize=3, label=name))
            if title == "loss":  # trainers that logged no step (logging_steps > steps) still report their mean loss
                for name, t in final_only.items():
                    final = next((e["train_loss"] for e in t["log"] if "train_loss" in e), None)
                    if final is not None:
                        data(ax.plot([t.get("global_step") or 0], [final], marker="s", linestyle="none",
                                     label=f"{name} (mean)"))
            ax.set_title(title)
            ax.set_xlabel("optimizer step")
            if ax.has_data():
                ax.legend()
            else:
                empty(ax, "nothing logged")
        caption = "Per trainer, the values TRL logged every `logging_steps` optimizer steps."
        if final_only:
            caption += (f" {', '.join(final_only)} logged no step (fewer steps than logging_steps): a square marks the "
                        "mean training loss over the whole run instead.")
        return figure(svg(fig, "training curves"), caption)


def _reward_accuracy(report: dict[str, Any]) -> Html:
    sets = [(name, r) for name, r in (("held-out pairs", report.get("heldout")), ("HH-RLHF", report.get("hh_rlhf")))
            if r and r.get("pairs")]
    panels = max(1, len(sets))
    with plot(width=3.75 * panels, height=2.6, ncols=panels, label="reward model accuracy") as (fig, axes):
        for ax, (name, r) in zip(axes, sets):
            vbars(ax, ["reward model", "always the longer"], [r.get("accuracy"), r.get("length_baseline")],
                  colors=[ACCENT, DROPPED])
            ax.axhline(r.get("chance", 0.5), color=WARN, linestyle="--", linewidth=1)
            ax.set_title(f"{name} ({r['pairs']:,} pair{'s' if r['pairs'] != 1 else ''})")
        if not sets:
            empty(axes[0], "the export had no held-out pairs to score")
        return figure(svg(fig, "reward model accuracy"),
                      "The share of pairs where the reward model scores the chosen response higher, beside always "
                      "preferring the longer response; dashed: chance.")


def _policy_eval(r: dict[str, Any]) -> list[Html]:
    monitors = r.get("monitors") or {}
    policy, reference = monitors.get("policy") or {}, monitors.get("reference") or {}
    kl = (r.get("kl_to_reference") or {}).get("per_token")
    rewards = f"{_num(policy.get('reward_mean'))} / {_num(reference.get('reward_mean'))}"
    stats = key_figures([("win rate vs the start model", percent(r.get("win_rate"))), ("prompts judged", r.get("prompts", "-")),
                         ("KL to the start model, per token", f"{kl:.3g}" if kl is not None else "-"),
                         ("mean reward, policy / start", rewards)])
    panels = [("mean length (chars)", "mean_length_chars", None), ("refusals: eval prompts", "refusal_rate", (0, 1)),
              ("refusals: harmless prompts", "harmless_refusal_rate", (0, 1)), ("cut at max_tokens", "truncated_share", (0, 1))]
    with plot(width=7.5, height=4.6, ncols=3, nrows=2, label="policy evaluation") as (fig, axes):
        vbars(axes[0], ["win rate", "soft win rate"], [r.get("win_rate"), r.get("soft_win_rate")], colors=[KEPT, ACCENT])
        axes[0].axhline(0.5, color=WARN, linestyle="--", linewidth=1)
        axes[0].set_title("policy vs start model")
        for ax, (title, key, ylim) in zip(axes[1:5], panels):
            values = [policy.get(key), reference.get(key)]
            top = max([v for v in values if v is not None] + [1.0])
            vbars(ax, ["policy", "start"], values, colors=[KEPT, DROPPED], ylim=ylim or (0, top),
                  fmt="{:.1%}" if ylim else "{:,.0f}")
            ax.set_title(title)
        vbars(axes[5], ["policy"], [kl], colors=[KEPT], ylim=None, fmt="{:.3g}")
        axes[5].set_title("KL per token")
        caption = ("The trained policy against the model it started from, on the same prompts answered greedily and judged "
                   "under the constitution (dashed: an even match). The monitors say where a win may come from: longer "
                   "answers, more refusals (of harmless requests: over-refusal), or drifting far from the start model (KL).")
        return [stats, figure(svg(fig, "policy evaluation"), caption)]


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"
