"""Generation backends behind one small protocol.

Stages build `GenerationRequest`s and hand a whole batch to `Backend.generate`; backends own model
loading, chat templating and batching. Stages never import torch or vllm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from engine.errors import CharterError

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": str}


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
    finish_reason: str  # "stop" (end of sequence) or "length" (hit max_tokens)
    prompt_tokens: int
    completion_tokens: int


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
    """What a stage needs from a model: continue many conversations, or score option tokens, at once."""

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


BACKENDS = ("vllm", "transformers")


def load_backend(kind: str, model_path: str, **options: object) -> Backend:
    """Build the named backend over a local model folder."""
    if kind == "vllm":
        from engine.backends.vllm_backend import VLLMBackend

        return VLLMBackend(model_path, **options)  # type: ignore[arg-type]
    if kind == "transformers":
        from engine.backends.transformers_backend import TransformersBackend

        return TransformersBackend(model_path, **options)  # type: ignore[arg-type]
    raise CharterError(f"unknown backend {kind!r}; choose one of: {', '.join(BACKENDS)}")
