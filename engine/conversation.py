"""The conversation contract: chat messages as stages, the judge, export and training read them."""

from __future__ import annotations

from typing import Any

import polars as pl

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": str}
CONVERSATION = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))  # a conversation column's dtype


def messages_for(prompt: str, system_prompt: str | None = None) -> tuple[Message, ...]:
    """A prompt as the opening user turn, after the system prompt when there is one."""
    system = ({"role": "system", "content": system_prompt},) if system_prompt else ()
    return (*system, {"role": "user", "content": prompt})


def as_messages(value: Any) -> list[Message]:
    """A prompt given as TRL conversational messages or as plain text, as chat messages."""
    if isinstance(value, list):
        return [{"role": m["role"], "content": m["content"]} for m in value]
    return [{"role": "user", "content": str(value)}]


def last_text(value: Any) -> str:
    """The text of a reply given as TRL conversational messages (the last one) or as plain text."""
    return str(value[-1]["content"]) if isinstance(value, list) else str(value)
