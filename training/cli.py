"""`charter train ...` and `charter eval`: parse, load the train config, call one function. CharterError -> exit 1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from engine.errors import CharterError, user_errors

train_app = typer.Typer(
    no_args_is_help=True, help="Train on a charter export with TRL (reward model, DPO, PPO/GRPO/RLOO); evaluate."
)
console = Console()

DATASET = typer.Option(..., "--dataset", help="a `charter export` folder (holds dataset/), or the dataset folder itself")
CONFIG = typer.Option(..., "--config", help="train YAML: the train section, or a recipe with a `train:` key")


def _section(config: Path, name: str):
    from training.config import load_train_config

    section = getattr(load_train_config(config), name)
    if section is None:
        raise CharterError(f"{config}: no `{name}:` section")
    return section


@train_app.command()
@user_errors
def reward(dataset: Path = DATASET, config: Path = CONFIG) -> None:
    """Train a reward model (resumes from its last checkpoint), then report held-out and HH-RLHF accuracy."""
    from training.reward import reward_report, train_reward_model

    cfg = _section(config, "reward")
    out = train_reward_model(dataset, cfg)
    report = reward_report(out, dataset, cfg.eval_hh, cfg.eval_hh_limit, cfg.seed)
    console.print(f"wrote {out}")
    console.print(_reward_table(report))


@train_app.command("reward-eval")
@user_errors
def reward_eval(
    model: Path = typer.Option(..., help="a trained reward model folder"),
    dataset: Path = typer.Option(None, "--dataset", help="export folder: accuracy on its test split"),
    hh: Path = typer.Option(None, help="HH-RLHF file (e.g. ../shared/data/hh-rlhf/harmless-base-test.jsonl.gz)"),
    limit: int = typer.Option(200, help="seeded sample of the HH file"),
    seed: int = typer.Option(0),
) -> None:
    """Accuracy of a reward model on held-out pairs and human labels, beside the always-longer baseline."""
    from training.reward import reward_report

    console.print(_reward_table(reward_report(model, dataset, hh, limit, seed)))


@train_app.command()
@user_errors
def dpo(dataset: Path = DATASET, config: Path = CONFIG) -> None:
    """Train a policy with DPO (loss variant, beta, label smoothing, LoRA from the config); resumes."""
    from training.dpo import train_dpo

    console.print(f"wrote {train_dpo(dataset, _section(config, 'dpo'))}")


@train_app.command()
@user_errors
def ppo(dataset: Path = DATASET, config: Path = CONFIG) -> None:
    """RL against the trained reward model on the export's prompts: PPO, or GRPO/RLOO (`algorithm`)."""
    from training.ppo import train_ppo

    console.print(f"wrote {train_ppo(dataset, _section(config, 'ppo'))}")


@train_app.command("eval")
@user_errors
def evaluate(
    policy: str = typer.Option(..., help="the trained policy folder"),
    reference: str = typer.Option(..., help="the model it started from: a folder or smollm2-135m"),
    prompts: Path = typer.Option(Path("data/prompts/redteam.jsonl"), help="prompts to compare answers on"),
    harmless: Path = typer.Option(Path("data/prompts/helpful.jsonl"), help="harmless prompts: refusal rate (over-refusal)"),
    column: str = typer.Option("prompt", help="prompt column in both files"),
    limit: int = typer.Option(None, help="first N prompts of each file"),
    judge: str = typer.Option(None, help="judge model folder (default: the reference model)"),
    judge_backend: str = typer.Option("transformers", help="vllm or transformers"),
    constitution: Path = typer.Option(Path("constitution/default.yaml"), help="whose comparison questions the judge asks"),
    principles: int = typer.Option(2, help="comparison principles per pair (0 = all), each asked in both orders"),
    reward_model: Path = typer.Option(None, help="also report this reward model's mean score for both"),
    max_tokens: int = typer.Option(64, help="new tokens per (greedy) answer"),
    batch_size: int = typer.Option(8),
    seed: int = typer.Option(0),
    out: Path = typer.Option(None, help="report folder (default: POLICY/eval)"),
) -> None:
    """Win rate of a policy against its reference, judged by the constitution; length, refusal, KL, reward monitors."""
    from engine.backends import load_backend
    from engine.config import JudgeConfig, PromptSource
    from engine.constitution import load_constitution
    from engine.models import resolve_model
    from engine.stages.prompts import load_prompts
    from training.evaluate import evaluate_policy, text_report

    texts = load_prompts(PromptSource(str(prompts), column, limit=limit))["prompt"].to_list()
    benign = load_prompts(PromptSource(str(harmless), column, limit=limit))["prompt"].to_list()
    policy_dir, reference_dir = resolve_model(policy), resolve_model(reference)
    judge_path = str(resolve_model(judge) if judge else reference_dir)
    backend = load_backend(judge_backend, judge_path, **({"batch_size": batch_size} if judge_backend == "transformers" else {}))
    report = evaluate_policy(
        policy_dir, reference_dir, texts, backend, load_constitution(constitution), harmless_prompts=benign,
        reward_model_dir=reward_model, judge_cfg=JudgeConfig(principles=principles), max_tokens=max_tokens,
        batch_size=batch_size, seed=seed, out_dir=out or policy_dir / "eval",
    )
    console.print(text_report(report), highlight=False, markup=False, soft_wrap=True)


def _reward_table(report: dict[str, Any]):
    from rich.table import Table

    table = Table(title=f"reward model {report['model']}")
    for name in ("pairs set", "pairs", "accuracy", "length baseline", "mean gap"):
        table.add_column(name, justify="left" if name == "pairs set" else "right")
    for name in ("heldout", "hh_rlhf"):
        if name in report:
            r = report[name]
            table.add_row(name, str(r.get("pairs", 0)), *(_num(r.get(k)) for k in ("accuracy", "length_baseline", "mean_gap")))
    return table


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else json.dumps(value)
