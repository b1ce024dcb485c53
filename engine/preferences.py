"""Read human-labelled preference files into pairs the judge can score.

Formats: Anthropic HH-RLHF (`{"chosen": TRANSCRIPT, "rejected": TRANSCRIPT}`, JSONL, optionally
gzipped; multi-turn kept as chat messages), and JSONL/Parquet with `prompt`/`chosen`/`rejected`
columns (plain strings, or TRL's conversational message lists). The human-chosen response is
`response_a`; the judge asks both orders, so that slot carries no advantage.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import polars as pl

from engine.conversation import last_text
from engine.errors import CharterError
from engine.judges import judge_items
from engine.keys import stable_hash

_TURN = re.compile(r"\n\n(Human|Assistant):")
_ROLES = {"Human": "user", "Assistant": "assistant"}


DEFAULT_PREFERENCES = "data/eval/preferences.jsonl"  # relative to the working directory, like the constitution


@dataclass
class PreferenceFile:
    pairs: pl.DataFrame  # pair_id, prompt, conversation, response_a (human-chosen), response_b
    rows_read: int
    skipped: list[str] = field(default_factory=list)  # "row N: reason", reported, never silent


def parse_transcript(text: str) -> list[dict[str, str]]:
    """`\\n\\nHuman: ...\\n\\nAssistant: ...` -> chat messages."""
    parts = _TURN.split(text)
    if parts[0].strip():
        raise ValueError("text before the first Human/Assistant turn")
    return [{"role": _ROLES[role], "content": body.strip()} for role, body in zip(parts[1::2], parts[2::2])]


def split_hh_pair(chosen: str, rejected: str) -> tuple[list[dict[str, str]], str, str]:
    """Shared conversation up to the last Assistant turn, and the two final replies."""
    marker = "\n\nAssistant:"
    ci, ri = chosen.rfind(marker), rejected.rfind(marker)
    if ci < 0 or ri < 0:
        raise ValueError("no Assistant turn")
    if chosen[:ci] != rejected[:ri]:
        raise ValueError("chosen and rejected differ before the last Assistant turn")
    conversation = parse_transcript(chosen[:ci])
    if not conversation or conversation[-1]["role"] != "user":
        raise ValueError("conversation does not end with a Human turn")
    return conversation, chosen[ci + len(marker):].strip(), rejected[ri + len(marker):].strip()


def _read_rows(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        return pl.read_parquet(path).to_dicts()
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise CharterError(f"{path}: row {n}: invalid JSON ({exc.msg})") from None
    return rows


def _row_to_pair(row: dict) -> tuple[list[dict[str, str]], str, str]:
    for side in ("chosen", "rejected"):
        if not isinstance(row[side], (str, list)):
            raise ValueError(f"{side} is {type(row[side]).__name__}, expected text or chat messages")
    if "prompt" not in row:
        return split_hh_pair(row["chosen"], row["rejected"])
    prompt = row["prompt"]
    conversation = [dict(m) for m in prompt] if isinstance(prompt, list) else [{"role": "user", "content": str(prompt)}]
    return conversation, last_text(row["chosen"]).strip(), last_text(row["rejected"]).strip()


def load_preferences(path: str | Path, limit: int | None = None, seed: int = 0, rows: Sequence[int] | None = None) -> PreferenceFile:
    """Read, convert and (with `limit`) take a seeded sample, or exactly the 0-based `rows` given (for
    disjoint dev/test/train splits); rows that cannot be used are listed."""
    path = Path(path)
    if not path.is_file():
        raise CharterError(f"{path}: preference file not found")
    records_in = _read_rows(path)
    if not records_in:
        raise CharterError(f"{path}: no rows")
    missing = {"chosen", "rejected"} - set(records_in[0])
    if missing:
        raise CharterError(f"{path}: row 1: missing column(s) {', '.join(sorted(missing))}")
    indices = list(range(len(records_in)))
    if rows is not None:
        indices = sorted(i for i in rows if 0 <= i < len(records_in))
    elif limit is not None and limit < len(records_in):
        indices = sorted(random.Random(seed).sample(indices, limit))
    kept, pairs, skipped = [], [], []
    for i in indices:
        try:
            pairs.append(_row_to_pair(records_in[i]))
            kept.append(i)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # e.g. a number where text belongs
            skipped.append(f"row {i + 1}: {exc}")
    conversations = [conversation for conversation, _, _ in pairs]
    frame = judge_items([stable_hash("human-pair", path.name, i) for i in kept], [c[-1]["content"] for c in conversations],
                        [a for _, a, _ in pairs], [b for _, _, b in pairs], conversations)
    frame = frame.with_columns(pl.Series("row", [i + 1 for i in kept], dtype=pl.Int64)).select(
        "pair_id", "row", "prompt", "conversation", "response_a", "response_b")
    return PreferenceFile(frame, rows_read=len(records_in), skipped=skipped)
