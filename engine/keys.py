"""Stable content hashes: the ids and row keys that make resume and provenance work."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"cannot hash {type(value).__name__}")


def stable_hash(*parts: Any, length: int = 16) -> str:
    """Hex digest of the canonical JSON of `parts`; same inputs give the same id on any machine."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def derived_seed(*parts: Any) -> int:
    """A 31-bit seed derived from the inputs, so each row's randomness is independent of batching."""
    return int(stable_hash(*parts, length=8), 16) & 0x7FFFFFFF
