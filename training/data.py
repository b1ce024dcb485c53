"""What training reads: a charter export (TRL conversational prompt/chosen/rejected), checked before any model loads."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from engine.conversation import as_messages, last_text
from engine.errors import CharterError
from engine.judges import judge_items

PAIR_COLUMNS = ("prompt", "chosen", "rejected")


def load_pairs(dataset_dir: str | Path):
    """The export's DatasetDict, from the export folder (OUT) or OUT/dataset; CharterError unless it has the pair columns."""
    from datasets import Dataset, DatasetDict, load_from_disk

    root = Path(dataset_dir)
    folder = root / "dataset" if (root / "dataset").is_dir() else root
    if not folder.is_dir():
        raise CharterError(f"{root}: dataset folder not found; give a `charter export` folder (it holds dataset/)")
    try:
        data = load_from_disk(str(folder))
    except (FileNotFoundError, ValueError) as exc:
        raise CharterError(f"{folder}: not a saved Hugging Face dataset ({exc}); give a `charter export` folder") from None
    except IndexError:  # datasets cannot load a split saved with zero rows
        raise CharterError(f"{folder}: a split has no rows (did the filters keep any pairs? see filter_report.json)") from None
    if isinstance(data, Dataset):
        data = DatasetDict({"train": data})
    if "train" not in data:
        raise CharterError(f"{folder}: no train split (splits: {', '.join(data)})")
    missing = [c for c in PAIR_COLUMNS if c not in data["train"].column_names]
    if missing:
        raise CharterError(
            f"{folder}: train split lacks column(s) {', '.join(missing)}; training needs TRL preference pairs "
            f"({', '.join(PAIR_COLUMNS)}), as `charter export` writes them"
        )
    if data["train"].num_rows == 0:
        raise CharterError(f"{folder}: the train split is empty")
    return data


def heldout_split(data):
    """The test split, or None when the export has none (or it is empty)."""
    return data["test"] if "test" in data and data["test"].num_rows else None


def pairs_frame(split) -> pl.DataFrame:
    """A TRL preference split as the frame the judge and evaluators read: response_a = chosen, response_b = rejected."""
    rows = split.select_columns(list(PAIR_COLUMNS)).to_list()
    ids = split["pair_id"] if "pair_id" in split.column_names else [str(i) for i in range(len(rows))]
    conversations = [as_messages(r["prompt"]) for r in rows]
    return judge_items(list(ids), [c[-1]["content"] for c in conversations], [last_text(r["chosen"]) for r in rows],
                       [last_text(r["rejected"]) for r in rows], conversations)


def unique_prompts(split) -> list[list[dict[str, str]]]:
    """The distinct prompts of a split as chat messages, in first-seen order (RL trains on prompts only)."""
    seen, out = set(), []
    for prompt in split["prompt"]:
        messages = as_messages(prompt)
        key = tuple((m["role"], m["content"]) for m in messages)
        if key not in seen:
            seen.add(key)
            out.append(messages)
    return out
