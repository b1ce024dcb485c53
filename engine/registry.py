"""Name -> implementation maps for the pieces users pick by name in a recipe (backends, judge methods).

An entry is the object itself, or "module:attribute", imported on first use so that naming a backend
never imports torch or vLLM for the others. Callers look up; they never branch on names.
"""

from __future__ import annotations

import importlib
from typing import Any

from engine.errors import CharterError


class Registry:
    def __init__(self, what: str):
        self.what = what  # how errors name an entry: "backend", "judge mode"
        self._entries: dict[str, Any] = {}

    def register(self, name: str, target: Any) -> None:
        self._entries[name] = target

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def get(self, name: str) -> Any:
        """The entry named `name`, imported now if it was registered as "module:attribute"."""
        if name not in self._entries:
            raise CharterError(f"unknown {self.what} {name!r}; choose one of: {', '.join(self._entries)}")
        target = self._entries[name]
        if isinstance(target, str):
            module, _, attribute = target.partition(":")
            target = self._entries[name] = getattr(importlib.import_module(module), attribute)
        return target
