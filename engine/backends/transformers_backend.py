"""Backend over Hugging Face transformers: batched `generate` with left padding.

Lighter than vLLM (no engine start-up) and the one that runs on any torch install.
Sampling is seeded per batch, not per request: a resumed run reproduces ids and, with greedy
decoding, texts; sampled texts can differ from an uninterrupted run. vLLM seeds per request.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer

from engine.backends import Completion, GenerationRequest, OptionScores, ScoreRequest, context_overflow, overflowed
from engine.backends.chat import check_model_dir, render_chat, render_scoring_prompt, single_token_ids, too_long


@dataclass(frozen=True)
class TransformersOptions:
    """`backend_options` of `backend: transformers`."""

    batch_size: int = 16  # requests per generate / scoring forward pass
    dtype: str = "auto"  # auto: float32
    device: str | None = None  # default: cuda when available, else cpu

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"dtype: {self.dtype!r} is not one of auto, float32, bfloat16, float16")


class TransformersBackend:
    name = "transformers"
    Options = TransformersOptions

    def __init__(self, model_path: str, options: TransformersOptions | None = None, seed: int = 0):
        options = options or TransformersOptions()
        path = check_model_dir(model_path)
        self.model_id = str(path)
        self.batch_size = options.batch_size
        self.device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = "float32" if options.dtype == "auto" else options.dtype
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).to(self.device).eval()
        self.eos_ids = _eos_ids(self.model, self.tokenizer)
        self.max_model_len = getattr(self.model.config, "max_position_embeddings", None)

    @staticmethod
    def context_length(model_path: str, options: TransformersOptions) -> int | None:
        """The model's `max_position_embeddings`, read from its config.json without loading it."""
        return _config_context(check_model_dir(model_path))

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """Batched generate of the requests that fit the context; one that does not gets a context_overflow error."""
        encoded = [render_chat(self.tokenizer, r.messages) for r in requests]
        problems = [context_overflow(len(ids), r.sampling.max_tokens, self.max_model_len) for ids, r in zip(encoded, requests)]
        results: list[Completion | None] = [overflowed(len(ids), p) if p else None for ids, p in zip(encoded, problems)]
        # Batches of similar length waste less padding; requests with different sampling can't share one.
        todo = [i for i, r in enumerate(results) if r is None]
        order = sorted(todo, key=lambda i: (requests[i].sampling, len(encoded[i])))
        batches = _batches(order, requests, self.batch_size)
        for batch in tqdm(batches, desc="generate", unit="batch", leave=False, disable=len(batches) < 2):
            for i, completion in zip(batch, self._generate_batch([encoded[i] for i in batch], [requests[i] for i in batch])):
                results[i] = completion
        return results  # type: ignore[return-value]

    def option_token_ids(self, options: Sequence[str]) -> list[int]:
        return single_token_ids(self.tokenizer, options)

    def score_options(self, requests: Sequence[ScoreRequest]) -> list[OptionScores]:
        encoded = [render_scoring_prompt(self.tokenizer, r.messages, r.assistant_prefix) for r in requests]
        results = [OptionScores(None, too_long(len(ids), self.max_model_len)) for ids in encoded]
        ok = sorted((i for i, r in enumerate(results) if r.error is None), key=lambda i: len(encoded[i]))
        batches = [ok[i : i + self.batch_size] for i in range(0, len(ok), self.batch_size)]
        for batch in tqdm(batches, desc="score", unit="batch", leave=False, disable=len(batches) < 2):
            rows = self._last_token_logprobs([encoded[i] for i in batch])
            for i, row in zip(batch, rows):
                ids = self.option_token_ids(requests[i].options)
                results[i] = OptionScores(tuple(float(row[t]) for t in ids))
        return results

    @torch.inference_mode()
    def _last_token_logprobs(self, ids: list[list[int]]) -> torch.Tensor:
        padded = self.tokenizer.pad({"input_ids": ids}, return_tensors="pt").to(self.device)
        logits = self.model(**padded).logits[:, -1, :].float()  # left padding: last column is each row's end
        return torch.log_softmax(logits, dim=-1).cpu()

    @torch.inference_mode()
    def _generate_batch(self, ids: list[list[int]], requests: list[GenerationRequest]) -> list[Completion]:
        sampling = requests[0].sampling
        padded = self.tokenizer.pad({"input_ids": ids}, return_tensors="pt").to(self.device)
        torch.manual_seed(_batch_seed(requests))
        sample = sampling.temperature > 0
        out = self.model.generate(
            **padded,
            max_new_tokens=sampling.max_tokens,
            do_sample=sample,
            temperature=sampling.temperature if sample else None,
            top_p=sampling.top_p if sample else None,
            top_k=None,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.eos_ids,
        )
        new_tokens = out[:, padded["input_ids"].shape[1]:].tolist()
        return [self._completion(tokens, len(prompt)) for tokens, prompt in zip(new_tokens, ids)]

    def _completion(self, tokens: list[int], prompt_tokens: int) -> Completion:
        stop_at = next((i for i, t in enumerate(tokens) if t in self.eos_ids), None)
        kept = tokens if stop_at is None else tokens[:stop_at]
        return Completion(
            text=self.tokenizer.decode(kept, skip_special_tokens=True).strip(),
            finish_reason="length" if stop_at is None else "stop",
            prompt_tokens=prompt_tokens,
            completion_tokens=len(kept) + (stop_at is not None),
        )


def _config_context(path: Path) -> int | None:
    try:
        value = json.loads((path / "config.json").read_text(encoding="utf-8")).get("max_position_embeddings")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and value > 0 else None


def _eos_ids(model, tokenizer) -> list[int]:
    configured = model.generation_config.eos_token_id
    ids = configured if isinstance(configured, list) else [configured]
    return sorted({i for i in [*ids, tokenizer.eos_token_id] if i is not None})


def _batches(order: list[int], requests: Sequence[GenerationRequest], size: int) -> list[list[int]]:
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < size and requests[batches[-1][0]].sampling == requests[i].sampling:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def _batch_seed(requests: Sequence[GenerationRequest]) -> int:
    digest = hashlib.sha256(",".join(str(r.seed) for r in requests).encode()).digest()
    return int.from_bytes(digest[:4], "little")
