"""A recipe end to end: the engine's stages (engine/runner.py), then training and policy evaluation.

The engine never imports training; this module composes the two, and `charter run` calls it. The
recipe's `train:` and `evaluate:` sections are checked here, before the engine writes anything.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import polars as pl
from rich.console import Console

from engine.backends import Backend
from engine.config import PromptSource, Recipe
from engine.constitution import Constitution, load_constitution
from engine.models import resolve_model
from engine.runner import RunResult, run_recipe
from engine.stages.prompts import load_prompts
from engine.store import RunStore
from training.config import EvaluateConfig, TrainConfig, evaluate_config, train_config
from training.distributed import LaunchSettings, launch_training


def run_and_train(recipe: Recipe, console: Console | None = None, backend: Backend | None = None) -> RunResult:
    """`charter run`: the engine stages, filter and export, then reward -> DPO -> PPO and evaluation when asked."""
    console = console or Console(stderr=True)
    train = None if recipe.train is None else train_config(recipe.train, f"{recipe.source_path}: train")
    evaluate = evaluate_config(recipe.evaluate, f"{recipe.source_path}: evaluate") if train or recipe.evaluate else None
    result = run_recipe(recipe, console, backend)
    try:
        if train is not None and "export" in result.manifest:
            export_dir = Path(result.manifest["export"])
            result.train = train_and_evaluate(recipe, train, evaluate, export_dir, result.judge, console)
            result.manifest["train"] = result.train
            with RunStore(result.run_dir) as store:
                store.write_manifest(result.manifest)
        write_report(result.run_dir, console)
    finally:
        result.close()
    return result


def write_report(run_dir: Path, console: Console) -> None:
    """RUN/report.html, once per run, after training so the page has it; a problem with it does not fail the run."""
    from engine.errors import CharterError
    from engine.report import write_run_report

    try:
        console.print(f"report: {write_run_report(run_dir)}", highlight=False)
    except CharterError as exc:
        console.print(f"[yellow]the run is done, but its report was not written: {exc}[/yellow]", highlight=False)


def train_and_evaluate(recipe: Recipe, cfg: TrainConfig, ev: EvaluateConfig | None, export_dir: Path,
                       judge: Callable[[], Backend], console: Console) -> dict:
    """reward -> dpo -> ppo (each when configured; each resumes or skips when already done), then the
    trained policy against the model it started from, judged under the constitution as the recipe judges."""
    from training.dpo import train_dpo
    from training.ppo import train_ppo
    from training.reward import reward_report, train_reward_model

    done: dict = {}
    steps = [("reward", cfg.reward, train_reward_model), ("dpo", cfg.dpo, train_dpo), ("ppo", cfg.ppo, train_ppo)]
    for name, settings, train in steps:
        if settings is not None:
            how = f" ({cfg.launch.processes} processes, accelerate launch)" if cfg.launch else ""
            console.print(f"[bold]train {name}[/bold] -> {settings.output_dir}{how}")
            start = time.perf_counter()
            if cfg.launch:
                model = _launched(name, recipe.train, export_dir, cfg.launch, settings.output_dir)
            else:
                model = train(export_dir, settings)
            done[name] = {"model": str(model), "seconds": time.perf_counter() - start}
    if "reward" in done:
        hh = cfg.reward.eval_hh
        done["reward"]["eval"] = reward_report(done["reward"]["model"], export_dir, hh, cfg.reward.eval_hh_limit, recipe.seed)
    policy = done.get("ppo", done.get("dpo"))
    if policy is not None and ev is not None:
        start_model = (cfg.ppo or cfg.dpo).model
        start = time.perf_counter()
        report = _evaluate(recipe, ev, export_dir, policy["model"], start_model, judge(), done.get("reward", {}).get("model"))
        done["eval"] = {"report": str(Path(policy["model"]) / "eval"), "win_rate": report.get("win_rate"),
                        "eval_seconds": time.perf_counter() - start}
    return done


def _launched(name: str, section: dict, export_dir: Path, launch: LaunchSettings, output_dir: str) -> Path:
    """One training stage as `charter train NAME` under `accelerate launch`, reading the recipe's train section."""
    import tempfile

    import yaml

    with tempfile.TemporaryDirectory(prefix="charter-launch-") as tmp:
        config = Path(tmp) / "train.yaml"
        config.write_text(yaml.safe_dump(section))
        launch_training(name, export_dir, config, launch)
    return Path(output_dir)


def _evaluate(recipe: Recipe, ev: EvaluateConfig, export_dir: Path, policy: str, start_model: str, judge: Backend,
              reward_model: str | None) -> dict:
    """The policy on the export's held-out prompts (and harmless ones), judged with the recipe's judge settings."""
    from training.evaluate import evaluate_policy

    constitution: Constitution = load_constitution(recipe.constitution)
    held_out = pl.read_parquet(export_dir / "parquet" / "test.parquet")["prompt"].list.last().struct.field("content")
    harmless = load_prompts(PromptSource(ev.harmless, limit=ev.limit))["prompt"].to_list()
    return evaluate_policy(
        policy, resolve_model(start_model), held_out.unique(maintain_order=True).head(ev.limit).to_list(),
        judge, constitution, harmless_prompts=harmless, judge_cfg=replace(recipe.judge, principles=ev.principles),
        max_tokens=ev.max_tokens, seed=recipe.seed, out_dir=Path(policy) / "eval", reward_model_dir=reward_model,
    )
