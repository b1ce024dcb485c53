"""Export kept pairs as a Hugging Face dataset in TRL's conversational preference format, with a card.

Layout of an export folder (written to a temporary sibling and renamed into place, so it is whole or absent):
    TO/dataset/                  DatasetDict.save_to_disk (train/test): load with datasets.load_from_disk
    TO/parquet/{split}.parquet   the same rows: load_dataset("parquet", data_files=...)
    TO/sft/dataset, TO/sft/parquet/{split}.parquet   SL-CAI SFT data: prompt -> final revision (`messages`)
    TO/README.md                 dataset card: HF YAML header, how it was made, recipe, filter report

A record is `prompt` = [{"role": "user", ...}], `chosen`/`rejected` = [{"role": "assistant", ...}] plus
provenance; its published schema is engine/schemas/pair.schema.json. Every exported record is validated
here with jsonschema (the filters already enforce the same schema as Polars expressions, so a failure here
is a bug and stops the export). Train/test are split by prompt, seeded, so no prompt is in both.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import numpy as np
import polars as pl
import yaml

from engine.config import ExportConfig
from engine.errors import CharterError
from engine.validation import SCHEMA_DIR, field_path, load_schema

RECORD_SCHEMA = SCHEMA_DIR / "pair.schema.json"
SPLITS = ("train", "test")


def _turn(role: str, column: str) -> pl.Expr:
    return pl.concat_list(pl.struct(pl.lit(role).alias("role"), pl.col(column).alias("content")))


def record_columns() -> dict[str, pl.Expr]:
    """Each exported field as an expression over the judged table, in the schema's order."""
    vote = pl.element().struct
    return {
        "prompt": _turn("user", "prompt"),
        "chosen": _turn("assistant", "chosen"),
        "rejected": _turn("assistant", "rejected"),
        "pair_id": pl.col("pair_id"),
        "prompt_id": pl.col("prompt_id"),
        "p_chosen": pl.col("p_chosen"),
        "margin": pl.col("margin"),
        "swap_consistent": pl.col("swap_consistent"),
        "principle_agreement": pl.col("principle_agreement"),
        # the principles with a scored vote; field-then-filter is 3x faster than filtering structs first
        "principle_ids": pl.col("votes").list.eval(vote.field("principle_id").filter(vote.field("p_first").is_not_null()))
        .list.unique(maintain_order=True),
        "constitution_version": pl.col("constitution_version"),
        "constitution_sha256": pl.col("constitution_sha256"),
        "model": pl.col("model"),
        "judge_model": pl.col("judge_model"),
    }


def pair_records(kept: pl.DataFrame) -> pl.DataFrame:
    return kept.lazy().select(**record_columns()).collect()


@cache
def _record_validator():
    import jsonschema

    return jsonschema.Draft202012Validator(load_schema(RECORD_SCHEMA))


def validate_records(records: pl.DataFrame) -> None:
    """jsonschema over every record; raises naming the pair and field of the first few failures."""
    validator, problems = _record_validator(), []
    for record in records.iter_rows(named=True):
        if not validator.is_valid(record):
            error = next(validator.iter_errors(record))
            problems.append(f"pair {record.get('pair_id')}: {field_path(error.absolute_path) or '(record)'}: {error.message}")
            if len(problems) == 5:
                break
    if problems:
        raise CharterError(f"exported records fail {RECORD_SCHEMA.name} (the schema_invalid filter should have dropped them):\n"
                           + "\n".join(problems))


def split_by_prompt(records: pl.DataFrame, test_size: float, seed: int) -> dict[str, pl.DataFrame]:
    """Seeded train/test split over prompts (over pairs if there is only one prompt); test >= 1 row given >= 2."""
    key = "prompt_id" if records["prompt_id"].n_unique() >= 2 else "pair_id"
    groups = records[key].unique().sort()
    n = len(groups)
    n_test = 0 if test_size <= 0 or n < 2 else min(n - 1, max(1, round(test_size * n)))
    test_keys = groups.gather(np.random.default_rng(seed).permutation(n)[:n_test])
    is_test = pl.col(key).is_in(test_keys.implode())
    return {"train": records.filter(~is_test), "test": records.filter(is_test)}


def export_dataset(
    kept: pl.DataFrame, report: dict, manifest: dict, out_dir: str | Path, test_size: float = 0.1, seed: int = 0,
    *, sft_counts: dict[str, int] | None = None,
):
    """Write kept pairs as a DatasetDict (save_to_disk + Parquet) and the dataset card into out_dir."""
    out = Path(out_dir)
    records = pair_records(kept)
    validate_records(records)
    dataset = _write_splits(split_by_prompt(records, test_size, seed), out)
    counts = {name: dataset[name].num_rows for name in SPLITS}
    judges = sorted(set(records["judge_model"].drop_nulls())) if records.height else []
    (out / "README.md").write_text(dataset_card(counts, report, manifest, judges, sft_counts))
    return dataset


def sft_records(pairs: pl.DataFrame, drop_truncated: bool = True) -> pl.DataFrame:
    """SL-CAI SFT rows from the pairs table: [user prompt, assistant final revision], empty/truncated ones left out."""
    revision = pl.col("response_b")
    usable = (pl.col("pair_kind") == "original-vs-revision") & (revision.str.strip_chars().str.len_chars() > 0)
    if drop_truncated:
        usable &= pl.col("response_b_finish_reason").fill_null("") != "length"
    messages = pl.concat_list(
        pl.struct(pl.lit("user").alias("role"), pl.col("prompt").alias("content")),
        pl.struct(pl.lit("assistant").alias("role"), revision.alias("content")),
    )
    return pairs.lazy().filter(usable).select(
        messages.alias("messages"), "prompt_id", pl.col("response_b_id").alias("revision_id"),
        pl.col("principle_ids").alias("critique_principle_ids"), "rounds", "constitution_version",
        "constitution_sha256", "model",
    ).collect()


def export_sft(pairs: pl.DataFrame, out_dir: str | Path, test_size: float = 0.1, seed: int = 0, drop_truncated: bool = True):
    """Write SL-CAI SFT data into out_dir/sft (save_to_disk + Parquet)."""
    return _write_splits(split_by_prompt(sft_records(pairs, drop_truncated), test_size, seed), Path(out_dir) / "sft")


def export_run(run_dir: str | Path, cfg: ExportConfig | None = None, *, to: str | Path | None = None,
               manifest: dict | None = None) -> Path:
    """Export a filtered run (kept.parquet, filter_report.json) to `to`, cfg.to or RUN/export, atomically.

    cfg defaults to the `export:` section of the run's recipe (in its manifest), else to ExportConfig().
    """
    from engine.config import export_config
    from engine.store import RunStore

    run = Path(run_dir)
    if not (run / "kept.parquet").is_file() or not (run / "filter_report.json").is_file():
        raise CharterError(f"{run}: no kept.parquet/filter_report.json; run `charter filter {run}` first")
    store = RunStore(run)
    manifest = manifest if manifest is not None else store.read_manifest()
    if cfg is None:
        cfg = export_config(manifest.get("recipe", {}).get("export"), str(run / "manifest.json"))
    report = json.loads((run / "filter_report.json").read_text())
    out = Path(to or cfg.to or run / "export")
    with _replacing_dir(out) as tmp:
        sft_counts = None
        if cfg.sft:
            drop_truncated = report.get("config", {}).get("drop_truncated", True)  # as the filters did
            sft = export_sft(store.read("pairs"), tmp, cfg.test_size, cfg.seed, drop_truncated)
            sft_counts = {name: sft[name].num_rows for name in SPLITS}
        export_dataset(store.read("kept"), report, manifest, tmp, cfg.test_size, cfg.seed, sft_counts=sft_counts)
    return out


def push_to_hub(export_dir: str | Path, repo: str) -> None:
    """Upload an export with DatasetDict.push_to_hub, then its card. Needs network and a token: untested offline."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in ("", "0", "false", "no", "off"):
        raise CharterError(f"HF_HUB_OFFLINE is set: not pushing to {repo}; unset it (and log in) to push {export_dir}")
    from huggingface_hub import HfApi, constants

    endpoint = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=5).close()
    except OSError as exc:
        raise CharterError(f"cannot reach {constants.ENDPOINT} ({exc}); the export is in {export_dir}, push it later") from None
    from datasets import load_from_disk

    folder = Path(export_dir)
    load_from_disk(str(folder / "dataset")).push_to_hub(repo, data_dir="parquet")
    if (folder / "sft" / "dataset").is_dir():
        load_from_disk(str(folder / "sft" / "dataset")).push_to_hub(repo, config_name="sft", data_dir="sft/parquet")
    HfApi().upload_file(path_or_fileobj=str(folder / "README.md"), path_in_repo="README.md", repo_id=repo, repo_type="dataset")


def _write_splits(splits: dict[str, pl.DataFrame], folder: Path):
    """save_to_disk(folder/dataset) and folder/parquet/{split}.parquet, with plain Arrow types (not Polars' large_*)."""
    import pyarrow.parquet as pq
    from datasets import Dataset, DatasetDict

    tables = {name: _plain_arrow(frame.to_arrow()) for name, frame in splits.items()}
    dataset = DatasetDict({name: Dataset(table) for name, table in tables.items()})
    dataset.save_to_disk(str(folder / "dataset"))
    (folder / "parquet").mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        pq.write_table(table, folder / "parquet" / f"{name}.parquet")
    return dataset


def _plain_arrow(table):
    import pyarrow as pa

    def plain(t: pa.DataType) -> pa.DataType:
        if pa.types.is_large_string(t) or pa.types.is_string_view(t):
            return pa.string()
        if pa.types.is_large_list(t) or pa.types.is_list(t):
            return pa.list_(plain(t.value_type))
        if pa.types.is_struct(t):
            return pa.struct([pa.field(f.name, plain(f.type)) for f in t])
        return t

    return table.cast(pa.schema([pa.field(f.name, plain(f.type)) for f in table.schema]))


@contextmanager
def _replacing_dir(out: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `out`; on success it replaces `out` (only ever a previous export)."""
    if out.exists() and any(out.iterdir()) and not (out / "dataset" / "dataset_dict.json").is_file():
        raise CharterError(f"{out}: exists and is not a charter export; export to a new or empty folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".partial-{out.name}-*"):  # left by a killed export
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".partial-{out.name}-", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".partial-{out.name}-old-", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --- the record schema as Polars expressions (used by the schema_invalid filter) ----------------------

_TYPES = {"string": "String", "number": "numeric", "integer": "integer", "boolean": "Boolean", "array": "List",
          "object": "Struct"}
_KNOWN = {"type", "minLength", "minimum", "maximum", "pattern", "const", "enum", "minItems", "maxItems",
          "uniqueItems", "items", "required", "properties", "additionalProperties", "description", "title", "$ref"}


def record_schema_checks(record_dtypes: pl.Schema, columns: dict[str, pl.Expr] | None = None) -> list[tuple[pl.Expr, str]]:
    """(valid, "field: problem") for every constraint of pair.schema.json, over the judged table's columns.

    `columns` replaces some fields' expressions, e.g. with a column already computed once: Polars does not
    share a costly list expression between the many checks that read it.
    """
    root = load_schema(RECORD_SCHEMA)
    checks: list[tuple[pl.Expr, str]] = []
    for name, expr in {**record_columns(), **(columns or {})}.items():
        spec = root["properties"][name]
        _check_dtype(record_dtypes[name], _resolve(spec, root), name)
        checks += _schema_checks(expr, spec, root, name)
    return checks


def _resolve(spec: dict, root: dict) -> dict:
    while "$ref" in spec:
        spec = root["$defs"][spec["$ref"].rsplit("/", 1)[-1]]
    return spec


def _schema_checks(expr: pl.Expr, spec: dict, root: dict, path: str) -> list[tuple[pl.Expr, str]]:
    """(valid, message) for each constraint of a (sub)schema on the values of `expr`."""
    spec = _resolve(spec, root)
    unknown = set(spec) - _KNOWN
    if unknown:
        raise CharterError(f"{RECORD_SCHEMA}: {path}: {sorted(unknown)} not supported by the Polars check (engine/filters.py)")
    checks = [(expr.is_not_null(), f"{path}: missing")]
    if spec.get("type") in ("number", "integer"):
        checks.append((~expr.cast(pl.Float64).is_nan(), f"{path}: NaN"))
    bounds = {
        "minLength": (lambda x: expr.str.len_chars() >= x, "shorter than {}"),
        "minimum": (lambda x: expr >= x, "below minimum {}"),
        "maximum": (lambda x: expr <= x, "above maximum {}"),
        "pattern": (lambda x: expr.str.contains(x), "does not match {}"),
        "const": (lambda x: expr == x, "is not {!r}"),
        "enum": (lambda x: expr.is_in(x), "is not one of {}"),
        "minItems": (lambda x: expr.list.len() >= x, "fewer than {} items"),
        "maxItems": (lambda x: expr.list.len() <= x, "more than {} items"),
        "uniqueItems": (lambda x: (expr.list.n_unique() == expr.list.len()) | (not x), "items not unique"),
    }
    checks += [(make(spec[key]), f"{path}: {message.format(spec[key])}") for key, (make, message) in bounds.items() if key in spec]
    if "items" in spec:
        inner = _schema_checks(pl.element(), spec["items"], root, f"{path}[]")
        checks += [(expr.list.eval(ok).list.all(), message) for ok, message in inner]
    for name, sub in spec.get("properties", {}).items():
        checks += _schema_checks(expr.struct.field(name), sub, root, f"{path}.{name}")
    return checks


def _check_dtype(dtype: pl.DataType, spec: dict, path: str) -> None:
    """Types are per column in Polars: a mismatch is a wrong table, not a bad row."""
    want = _TYPES.get(spec.get("type", ""), None)
    ok = (
        want is None
        or (want == "numeric" and dtype.is_numeric())
        or (want == "integer" and dtype.is_integer())
        or type(dtype).__name__ == want
    )
    if not ok:
        raise CharterError(f"exported field {path} would be {dtype}; {RECORD_SCHEMA.name} wants {spec['type']}")


# --- dataset card -----------------------------------------------------------------------------------


def dataset_card(counts: dict[str, int], report: dict, manifest: dict, judges: list[str],
                 sft_counts: dict[str, int] | None = None) -> str:
    """README.md: the Hub's YAML header (configs point at the Parquet files) and how the data was made."""
    recipe = json.loads(json.dumps(manifest.get("recipe", {}), default=str))  # tuples -> lists for YAML
    constitution, model = manifest.get("constitution", {}), manifest.get("model", {}).get("name", "?")
    configs = {"default": ("parquet", counts)} | ({"sft": ("sft/parquet", sft_counts)} if sft_counts else {})
    header = {
        "license": "other",
        "license_name": "generated-text-inherits-model-license",
        "task_categories": ["text-generation"],
        "tags": ["dpo", "reward-modeling", "preference", "rlaif", "constitutional-ai", "synthetic", "trl", "charter"],
        "configs": [
            {"config_name": name, **({"default": True} if name == "default" else {}),
             "data_files": [{"split": s, "path": f"{folder}/{s}*.parquet"} for s in SPLITS]}
            for name, (folder, _) in configs.items()
        ],
        "dataset_info": [
            {"config_name": name, "splits": [{"name": s, "num_examples": n} for s, n in c.items()]}
            for name, (_, c) in configs.items()
        ],
    }
    prompts = recipe.get("prompts", {})
    source = prompts.get("source") or Path(prompts.get("path", "?")).name
    lines = [
        "---", yaml.safe_dump(header, sort_keys=False).rstrip(), "---", "",
        f"# {recipe.get('name', 'charter')}: constitutional AI preference pairs", "",
        "Preference pairs in TRL's conversational format (`prompt`, `chosen`, `rejected` as chat messages),",
        "made by charter from a constitution: a policy model answered each prompt, critiqued",
        "and revised its answer against sampled principles, and a judge model compared the original with the",
        "revision under several of the constitution's comparison principles, each asked in both orders and",
        "scored from the option tokens' probabilities (`p_chosen`). Low-quality pairs were filtered out.", "",
        "## How it was made", "",
        f"- policy model: `{model}` (backend `{manifest.get('backend', '?')}`)",
        f"- judge model: {', '.join(f'`{j}`' for j in judges) or '-'}",
        f"- constitution: `{constitution.get('name', '?')}` version `{constitution.get('version', '?')}`, "
        f"sha256 `{constitution.get('sha256', '?')}`",
        f"- prompts: `{source}` ({prompts.get('path', '?')})",
        f"- charter {manifest.get('charter_version', '?')}; packages: "
        + (", ".join(f"{k} {v}" for k, v in manifest.get("packages", {}).items() if v) or "-"), "",
        "Recipe:", "", "```yaml", yaml.safe_dump(recipe, sort_keys=False).rstrip(), "```", "",
        "## Filters", "", f"{report.get('input', 0)} judged pairs in, {report.get('kept', 0)} kept.", "",
        "| filter (in order) | pairs dropped |", "|---|---:|",
        *(f"| {reason} | {n} |" for reason, n in report.get("dropped", {}).items()),
        f"| **kept** | **{report.get('kept', 0)}** |", "",
        _distribution_table(report), "",
        "## Splits", "", "| config | split | rows |", "|---|---|---:|",
        *(f"| {name} | {s} | {n} |" for name, (_, c) in configs.items() for s, n in c.items()), "",
        "Train and test are split by prompt (seeded), so no prompt appears in both.", "",
        "## Use", "", "```python", "from datasets import load_dataset",
        'pairs = load_dataset("path/to/this/folder")          # or the Hub repo; "sft" config: SFT messages',
        "# trl.DPOTrainer(model=..., train_dataset=pairs['train'], processing_class=tokenizer, args=DPOConfig(...))",
        "```", "",
        "## License", "",
        "The responses, revisions and labels are generated text: they inherit the license and terms of use of the",
        f"policy model (`{model}`) and of the judge model. The prompts come from the sources listed above",
        f"(`{source}`) under their own terms. Check both before redistributing or training on this data.", "",
    ]
    return "\n".join(lines)


def _distribution_table(report: dict) -> str:
    dist = report.get("distributions", {})
    if not dist:
        return ""
    rows = ["| measure | median in | median kept | mean in | mean kept |", "|---|---:|---:|---:|---:|"]
    for name in dist.get("input", {}):
        a, b = dist["input"][name], dist["kept"][name]
        rows.append(f"| {name} | {a['median']} | {b['median']} | {a['mean']} | {b['mean']} |")
    share = report.get("chosen_longer_share", {})
    rows.append(f"| chosen longer (share) | | | {share.get('input')} | {share.get('kept')} |")
    return "\n".join(rows)
