"""The dataset card (README.md of an export): the Hub's YAML header and how the data was made."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml



def dataset_card(counts: dict[str, int], report: dict, manifest: dict, judges: list[str],
                 sft_counts: dict[str, int] | None = None, constitutions: list[dict] | None = None) -> str:
    """README.md: the Hub's YAML header (configs point at the Parquet files) and how the data was made."""
    recipe = publishable(json.loads(json.dumps(manifest.get("recipe", {}), default=str)))  # tuples -> lists for YAML
    constitution, model = manifest.get("constitution", {}), publishable(manifest.get("model", {}).get("name", "?"))
    configs = {"default": ("parquet", counts)} | ({"sft": ("sft/parquet", sft_counts)} if sft_counts else {})
    header = {
        "license": "other",
        "license_name": "generated-text-inherits-model-license",
        "task_categories": ["text-generation"],
        "tags": ["dpo", "reward-modeling", "preference", "rlaif", "constitutional-ai", "synthetic", "trl", "charter"],
        "configs": [
            {"config_name": name, **({"default": True} if name == "default" else {}),
             "data_files": [{"split": s, "path": f"{folder}/{s}*.parquet"} for s in splits]}
            for name, (folder, splits) in configs.items()
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
        *_constitution_lines(constitution, constitutions or []),
        f"- prompts: `{source}` ({prompts.get('path', '?')})",
        f"- charter {manifest.get('charter_version', '?')}; packages: "
        + (", ".join(f"{k} {v}" for k, v in manifest.get("packages", {}).items() if v) or "-"), "",
        "Recipe:", "", "```yaml", yaml.safe_dump(recipe, sort_keys=False).rstrip(), "```", "",
        "## Filters", "", f"{report.get('input', 0)} judged pairs in, {report.get('kept', 0)} kept.", "",
        *(["**No pair survived the filters, so this dataset is empty** (its splits have the columns and no rows).",
           "The table below says which filter dropped how many; loosen those thresholds or use a stronger judge.", ""]
          if not report.get("kept") else []),
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


def _constitution_lines(current: dict, used: list[dict]) -> list[str]:
    """The constitution line; when the pairs were judged under several (allow_mixed_constitutions), one per each."""
    if len(used) <= 1:
        return [f"- constitution: `{current.get('name', '?')}` version `{current.get('version', '?')}`, "
                f"sha256 `{current.get('sha256', '?')}`"]
    lines = [f"- constitutions: the pairs were judged under {len(used)} constitutions (exported together with "
             "`allow_mixed_constitutions`); each record's `constitution_sha256` says which:"]
    return lines + [f"  - version `{c['version']}`, sha256 `{c['sha256']}`: {c['pairs']} pairs" for c in used]


def publishable(value: Any) -> Any:
    """A value fit for a card meant for the Hub: absolute paths made relative to the working directory
    (the project root), or cut to their last two parts when they lie outside it."""
    if isinstance(value, dict):
        return {k: publishable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [publishable(v) for v in value]
    if isinstance(value, str) and value.startswith(("/", "~")):
        path = Path(value).expanduser()
        try:
            return str(path.resolve().relative_to(Path.cwd().resolve()))
        except ValueError:
            return str(Path(*path.parts[-2:]))
    return value


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
