"""Generation backends behind one small protocol, and the registry that maps a kind to its class.

Stages build `GenerationRequest`s and hand a whole batch to `Backend.generate`; backends own model
loading, chat templating and batching. Stages never import torch or vllm. `load_backend` is the only
way anything builds a backend: a new backend is one module plus one `register_backend` line below.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence

from engine.conversation import Message
from engine.errors import CharterError
from engine.registry import Registry


@dataclass(frozen=True)
class Sampling:
    """Per-request sampling parameters; temperature 0 means greedy."""

    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 128


@dataclass(frozen=True)
class GenerationRequest:
    """One chat conversation to continue with an assistant turn."""

    messages: tuple[Message, ...]
    sampling: Sampling
    seed: int


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # "stop" (end of sequence) or "length" (hit max_tokens); "error" with `error` set
    prompt_tokens: int
    completion_tokens: int
    error: str | None = None  # why this one request failed; None when it succeeded


# Per-row errors. One starting with UNAVAILABLE says the model could not be reached (a server down, retries
# spent): a later run may succeed, so stages leave such rows undone. Any other error is that row's outcome
# (for example CONTEXT_OVERFLOW: the request does not fit the model's context) and is stored with it.
UNAVAILABLE = "unavailable: "
CONTEXT_OVERFLOW = "context_overflow: "


def context_overflow(prompt_tokens: int, max_tokens: int, limit: int | None) -> str | None:
    """Why a request does not fit the model's context (prompt + reply budget), or None when it does."""
    if limit is None or prompt_tokens + max_tokens <= limit:
        return None
    return (f"{CONTEXT_OVERFLOW}prompt is {prompt_tokens} tokens and max_tokens {max_tokens}; "
            f"the model's context is {limit}")


def overflowed(prompt_tokens: int, reason: str) -> Completion:
    """The placeholder result of a request that was not sent because it does not fit."""
    return Completion(text="", finish_reason="error", prompt_tokens=prompt_tokens, completion_tokens=0, error=reason)


@dataclass(frozen=True)
class ScoreRequest:
    """Score the next token after `assistant_prefix` (the opened assistant turn) for each option label."""

    messages: tuple[Message, ...]
    assistant_prefix: str
    options: tuple[str, ...]


@dataclass(frozen=True)
class OptionScores:
    """Log-probabilities of each option's token (full-vocabulary log-softmax), or why there are none."""

    logprobs: tuple[float, ...] | None
    error: str | None = None


class Backend(Protocol):
    """What a stage needs from a model: continue many conversations, or score option tokens, at once.

    A backend class also has `Options`, a frozen dataclass of its settings, and is built as
    `cls(model_path, options, seed)` by `load_backend`.
    """

    name: str
    model_id: str

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """Complete every request, in order; the backend batches them as it sees fit."""
        ...

    def option_token_ids(self, options: Sequence[str]) -> list[int]:
        """The single token id of each option label; CharterError if a label is not one token."""
        ...

    def score_options(self, requests: Sequence[ScoreRequest]) -> list[OptionScores]:
        """One forward pass per request; never raises for a single bad row (it gets an error instead)."""
        ...


BACKENDS = Registry("backend")


def register_backend(kind: str, target: str | type) -> None:
    """Make `kind` loadable: `target` is a class, or "module:Class" imported on first use (heavy imports wait)."""
    BACKENDS.register(kind, target)


def backend_kinds() -> tuple[str, ...]:
    return BACKENDS.names()


def backend_class(kind: str) -> type:
    return BACKENDS.get(kind)


def backend_options(kind: str, raw: Mapping[str, Any] | None, where: str = "backend_options") -> Any:
    """The backend's own Options dataclass from a recipe mapping; unknown keys and wrong types are errors."""
    return options_from_dict(backend_class(kind).Options, raw or {}, f"{where} (backend {kind!r})")


def load_backend(kind: str, model_path: str, options: Mapping[str, Any] | Any = None, seed: int = 0) -> Backend:
    """Build the named backend over a model folder; `options` is its Options dataclass or a mapping of it."""
    cls = backend_class(kind)
    if not isinstance(options, cls.Options):
        options = backend_options(kind, options)
    return cls(model_path, options, seed)


def close_backend(backend: Any) -> None:
    """Stop a backend's engine now (vLLM's process) rather than at interpreter exit; a no-op for others."""
    close = getattr(backend, "close", None)
    if callable(close):
        close()


def options_from_dict(cls: type, raw: Mapping[str, Any], where: str) -> Any:
    """Build a frozen options dataclass from a mapping, naming any unknown key or ill-typed value."""
    if not isinstance(raw, Mapping):
        raise CharterError(f"{where}: expected a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise CharterError(f"{where}: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(fields) or 'none'}")
    hints = typing.get_type_hints(cls)
    for key, value in raw.items():
        if not _type_ok(value, hints[key]):
            raise CharterError(f"{where}.{key}: {value!r} is not a {_type_name(hints[key])}")
    try:
        return cls(**raw)
    except (ValueError, TypeError) as exc:
        raise CharterError(f"{where}: {exc}") from None


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin or hint)


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(hint)))
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


register_backend("vllm", "engine.backends.vllm_backend:VLLMBackend")
register_backend("transformers", "engine.backends.transformers_backend:TransformersBackend")
register_backend("openai", "engine.backends.openai_backend:OpenAIBackend")
register_backend("reward_model", "engine.backends.reward_model_backend:RewardModelBackend")
