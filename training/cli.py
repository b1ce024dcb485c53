"""The `charter` command line: the engine's commands (engine/cli.py) plus those that compose the engine with
training: `charter run` (engine stages, then training when the recipe asks), `charter train ...` and
`charter eval`. Parse, load the config, call one function; CharterError -> exit 1, no traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from engine.cli import app, parse_key_values
from engine.constitution import DEFAULT_CONSTITUTION
from engine.errors import CharterError, user_errors
from engine.validation import format_number
from training.config import EvaluateConfig

train_app = typer.Typer(
    no_args_is_help=True, help="Train on a charter export with TRL (reward model, DPO, PPO/GRPO/RLOO); evaluate."
)
app.add_typer(train_app, name="train")
console = Console()
err = Console(stderr=True)


@app.command()
@user_errors
def run(
    recipe: Path = typer.Argument(..., help="run recipe (YAML), e.g. data/recipes/demo.yaml"),
    ray: str = typer.Option(None, "--ray", metavar="ADDRESS",
                            help="run the model stages on a Ray cluster: auto (one started with `ray start`), "
                                 "HOST:PORT, ray://HOST:PORT, or local (start one here)"),
) -> None:
    """Run a recipe's stages into its output directory; re-running resumes and skips finished rows."""
    from engine.config import load_recipe
    from engine.runner import summary_table
    from training.pipeline import run_and_train

    loaded = load_recipe(recipe)
    result = run_and_train(loaded if ray is None else loaded.on_ray(ray), console=err)
    console.print(summary_table(result))

DATASET = typer.Option(..., "--dataset", help="a `charter export` folder (holds dataset/), or the dataset folder itself")
CONFIG = typer.Option(..., "--config", help="train YAML: the train section, or a recipe with a `train:` key")


def _section(config: Path, name: str):
    from training.config import load_train_config
    from training.distributed import check_launch

    check_launch()
    section = getattr(load_train_config(config), name)
    if section is None:
        raise CharterError(f"{config}: no `{name}:` section")
    return section


@train_app.command()
@user_errors
def reward(dataset: Path = DATASET, config: Path = CONFIG) -> None:
    """Train a reward model (resumes from its last checkpoint), then report held-out and HH-RLHF accuracy."""
    from training.distributed import is_main_process
    from training.reward import reward_report, train_reward_model

    cfg = _section(config, "reward")
    out = train_reward_model(dataset, cfg)
    if is_main_process():  # the report scores on one process; the others are done
        report = reward_report(out, dataset, cfg.eval_hh, cfg.eval_hh_limit, cfg.seed)
        _wrote(out)
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
    from training.distributed import refuse_several_processes
    from training.reward import reward_report

    refuse_several_processes("charter train reward-eval")
    console.print(_reward_table(reward_report(model, dataset, hh, limit, seed)))


@train_app.command()
@user_errors
def dpo(dataset: Path = DATASET, config: Path = CONFIG) -> None:
    """Train a policy with DPO (loss variant, beta, label smoothing, LoRA from the config); resumes."""
    from training.dpo import train_dpo

    _wrote(train_dpo(dataset, _section(config, 'dpo')))


@train_app.command()
@user_errors
def ppo(dataset: Path = DATASET, config: Path = CONFIG) -> None:
    """RL against the trained reward model on the export's prompts: PPO, or GRPO/RLOO (`algorithm`)."""
    from training.ppo import train_ppo

    _wrote(train_ppo(dataset, _section(config, 'ppo')))


@app.command("eval")
@user_errors
def evaluate(
    policy: str = typer.Option(..., help="the trained policy folder"),
    reference: str = typer.Option(..., help="the model it started from: a folder or smollm2-135m"),
    prompts: Path = typer.Option(Path("data/prompts/redteam.jsonl"), help="prompts to compare answers on"),
    harmless: Path = typer.Option(Path(EvaluateConfig.harmless), help="harmless prompts: refusal rate (over-refusal)"),
    column: str = typer.Option("prompt", help="prompt column in both files"),
    limit: int = typer.Option(None, help="first N prompts of each file"),
    recipe: Path = typer.Option(None, help="judge as this recipe's `judge:` section does (mode, backend, options)"),
    judge: str = typer.Option(None, help="judge model folder (default: the recipe's judge, else the reference model)"),
    judge_backend: str = typer.Option(None, help="judge backend kind (default: the recipe's, else transformers)"),
    option: list[str] = typer.Option([], "--option", "-o", help="judge backend option KEY=VALUE (repeatable)"),
    constitution: Path = typer.Option(None, help=f"whose questions the judge asks (default: the recipe's, else {DEFAULT_CONSTITUTION})"),
    principles: int = typer.Option(EvaluateConfig.principles, help="principles per pair (0 = all)"),
    reward_model: Path = typer.Option(None, help="also report this reward model's mean score for both"),
    max_tokens: int = typer.Option(EvaluateConfig.max_tokens, help="new tokens per (greedy) answer"),
    batch_size: int = typer.Option(8, help="answers generated per batch"),
    seed: int = typer.Option(0),
    out: Path = typer.Option(None, help="report folder (default: POLICY/eval)"),
) -> None:
    """Win rate of a policy against its reference, judged by the constitution; length, refusal, KL, reward monitors."""
    from engine.backends import close_backend, load_backend
    from engine.config import PromptSource
    from engine.constitution import load_constitution
    from engine.judge_eval import judge_settings
    from engine.models import resolve_model
    from engine.stages.prompts import load_prompts
    from training.distributed import refuse_several_processes
    from training.evaluate import evaluate_policy, text_report

    refuse_several_processes("charter eval")
    texts = load_prompts(PromptSource(str(prompts), column, limit=limit))["prompt"].to_list()
    benign = load_prompts(PromptSource(str(harmless), column, limit=limit))["prompt"].to_list()
    policy_dir, reference_dir = resolve_model(policy), resolve_model(reference)
    flags = {"model": judge or (None if recipe else str(reference_dir)), "backend": judge_backend or (None if recipe else "transformers"),
             "principles": principles, "constitution": constitution and str(constitution), "seed": seed}
    settings = judge_settings(recipe, flags, parse_key_values(option))
    backend = load_backend(settings.backend, str(settings.model_path), settings.judge.backend_options, settings.seed)
    try:
        report = evaluate_policy(
            policy_dir, reference_dir, texts, backend, load_constitution(settings.constitution), harmless_prompts=benign,
            reward_model_dir=reward_model, judge_cfg=settings.judge, max_tokens=max_tokens,
            batch_size=batch_size, seed=settings.seed, out_dir=out or policy_dir / "eval",
        )
    finally:
        close_backend(backend)
    console.print(text_report(report), highlight=False, markup=False, soft_wrap=True)


train_app.command("eval")(evaluate)


def _wrote(out: Path) -> None:
    """The one `wrote` line, from the main process (the others print nothing; their work is in the same folder)."""
    from training.distributed import is_main_process

    if is_main_process():
        console.print(f"wrote {out}")


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
    return format_number(value) if value is None or isinstance(value, float) else json.dumps(value)


if __name__ == "__main__":
    app()
