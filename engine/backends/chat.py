"""Chat templating and model-folder checks shared by every backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from engine.backends import Message, context_overflow
from engine.errors import CharterError


def check_model_dir(model_path: str | Path) -> Path:
    """Fail early, naming the path, when a folder does not hold a loadable model."""
    path = Path(model_path).expanduser()
    if not path.is_dir():
        raise CharterError(f"model path {str(path)!r} is not a folder (give a local model folder or 'smollm2-135m')")
    if not (path / "config.json").is_file():
        raise CharterError(f"model path {str(path)!r} has no config.json; is it a Hugging Face model folder?")
    return path


def render_chat(tokenizer: Any, messages: Sequence[Message]) -> list[int]:
    """Token ids of the conversation with the assistant turn opened, by the model's own chat template."""
    if not getattr(tokenizer, "chat_template", None):
        raise CharterError("the model's tokenizer has no chat_template; charter needs a chat (instruct) model")
    text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def render_scoring_prompt(tokenizer: Any, messages: Sequence[Message], assistant_prefix: str) -> list[int]:
    """Chat template with the assistant turn opened, then the prefix the scored token follows."""
    prefix = tokenizer(assistant_prefix, add_special_tokens=False)["input_ids"] if assistant_prefix else []
    return render_chat(tokenizer, messages) + prefix


def single_token_ids(tokenizer: Any, options: Sequence[str]) -> list[int]:
    """Token id of each label; labels must each be exactly one token, and distinct."""
    ids = []
    for label in options:
        encoded = tokenizer(label, add_special_tokens=False)["input_ids"]
        if len(encoded) != 1:
            raise CharterError(f"option label {label!r} is {len(encoded)} tokens for this tokenizer; it must be one")
        ids.append(encoded[0])
    if len(set(ids)) != len(ids):
        raise CharterError(f"option labels {list(options)} share a token id")
    return ids


def too_long(n_tokens: int, limit: int | None) -> str | None:
    """Why a scoring prompt (one generated token) does not fit the context, or None."""
    return context_overflow(n_tokens, 1, limit)
