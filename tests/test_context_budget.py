"""Requests that do not fit the model's context: the row is skipped with a reason, the run goes on."""

from __future__ import annotations

import json

import polars as pl
import pytest

from conftest import write_recipe
from engine.backends import CONTEXT_OVERFLOW, GenerationRequest, Sampling, ScoreRequest
from engine.config import load_recipe
from engine.errors import CharterError
from engine.runner import run_recipe

HUGE = "why" + " why" * 49_999  # about 200,000 characters: far past the tiny model's 2,048-token context


def prompts_file(folder, prompts):
    path = folder / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    return path


def overflow_run(folder, model, **overrides):
    prompts = prompts_file(folder, ["How do I boil an egg?", HUGE, "Name a prime number.", "What is rain?"])
    recipe = write_recipe(
        folder, model, prompts={"path": str(prompts), "column": "prompt"},
        judge={"principles": 1}, filter={}, export={}, **overrides,
    )
    return run_recipe(load_recipe(recipe))


def check_overflow_skipped(result):
    responses = pl.read_parquet(result.run_dir / "responses.parquet")
    skipped = responses.filter(pl.col("skip_reason").is_not_null())
    assert skipped["prompt"].to_list() == [HUGE]
    assert skipped["skip_reason"][0].startswith(CONTEXT_OVERFLOW)
    assert result.stages["responses"].skipped == 1 and result.stages["responses"].errors == 0
    pairs = pl.read_parquet(result.run_dir / "pairs.parquet")
    assert pairs.height == 3 and HUGE not in pairs["prompt"].to_list()  # the other prompts went all the way
    assert "finished_at" in result.manifest and (result.run_dir / "export" / "dataset").is_dir()  # the run finished


def test_an_overlong_prompt_is_skipped_on_the_transformers_backend(tmp_path, tiny_model):
    check_overflow_skipped(overflow_run(tmp_path, tiny_model))


def test_an_overlong_prompt_is_skipped_on_the_vllm_backend(tmp_path, tiny_model, vllm_backend):
    prompts = prompts_file(tmp_path, ["How do I boil an egg?", HUGE, "Name a prime number.", "What is rain?"])
    same_engine = {"max_model_len": 1024, "kv_cache_gib": 1, "dtype": "float32", "enforce_eager": True}  # as the fixture's
    recipe = write_recipe(tmp_path, tiny_model, backend="vllm", backend_options=same_engine,
                          prompts={"path": str(prompts), "column": "prompt"}, judge={"principles": 1}, filter={}, export={})
    check_overflow_skipped(run_recipe(load_recipe(recipe), backend=vllm_backend))


def test_backends_check_generation_against_the_context(transformers_backend, vllm_backend):
    fits = GenerationRequest(({"role": "user", "content": "hi"},), Sampling(temperature=0.0, max_tokens=4), 0)
    too_big = GenerationRequest(({"role": "user", "content": HUGE},), Sampling(temperature=0.0, max_tokens=4), 0)
    for backend in (transformers_backend, vllm_backend):
        limit = backend.max_model_len  # 2048 (the model's) and 1024 (the vLLM fixture's max_model_len)
        # A short prompt, but its reply budget alone is the whole context.
        tight = GenerationRequest(({"role": "user", "content": "hi"},), Sampling(temperature=0.0, max_tokens=limit), 0)
        ok, big, budget = backend.generate([fits, too_big, tight])
        assert ok.error is None and ok.completion_tokens > 0
        assert big.error.startswith(CONTEXT_OVERFLOW) and f"context is {limit}" in big.error and big.prompt_tokens > limit
        assert budget.error.startswith(CONTEXT_OVERFLOW) and f"max_tokens {limit}" in budget.error


def test_scoring_reports_a_context_overflow(transformers_backend):
    request = ScoreRequest(({"role": "user", "content": HUGE},), "Answer:", (" A", " B"))
    (scores,) = transformers_backend.score_options([request])
    assert scores.logprobs is None and scores.error.startswith(CONTEXT_OVERFLOW)


def test_a_reply_budget_that_fills_the_context_is_refused_before_anything_is_written(tmp_path, tiny_model):
    recipe = load_recipe(write_recipe(tmp_path, tiny_model, respond={"n": 1, "sampling": {"max_tokens": 4096}}))
    with pytest.raises(CharterError, match=r"respond.sampling.max_tokens is 4096.*context is 2048"):
        run_recipe(recipe)
    assert not (tmp_path / "run").exists()
    vllm = load_recipe(write_recipe(tmp_path, tiny_model, backend="vllm", backend_options={"max_model_len": 512},
                                    critique={"sampling": {"max_tokens": 600}}))
    with pytest.raises(CharterError, match=r"critique.sampling.max_tokens is 600.*raise backend_options.max_model_len"):
        run_recipe(vllm)
