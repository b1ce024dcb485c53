"""Both real backends over the tiny session model: same request/response types, batching, seeds."""

from __future__ import annotations

import pytest

from engine.backends import GenerationRequest, Sampling, load_backend
from engine.errors import CharterError

GREEDY = Sampling(temperature=0.0, top_p=1.0, max_tokens=6)
SAMPLED = Sampling(temperature=1.0, top_p=1.0, max_tokens=6)


def ask(text: str, sampling: Sampling = GREEDY, seed: int = 0) -> GenerationRequest:
    return GenerationRequest(({"role": "user", "content": text},), sampling, seed)


def test_transformers_left_padding_gives_the_same_greedy_text_alone_and_in_a_batch(transformers_backend):
    short = ask("Hi")
    alone = transformers_backend.generate([short])[0]
    batched = transformers_backend.generate([ask("Explain how vaccines train the immune system in detail"), short])[1]
    assert batched.text == alone.text
    assert batched.completion_tokens == alone.completion_tokens


def test_transformers_reports_length_finish_and_token_counts(transformers_backend):
    out = transformers_backend.generate([ask("Name a colour")])[0]
    assert out.finish_reason in {"stop", "length"}
    assert 0 < out.completion_tokens <= GREEDY.max_tokens
    assert out.prompt_tokens > 3


@pytest.mark.vllm
def test_vllm_returns_one_completion_per_request_in_order(vllm_backend):
    requests = [ask(f"Count to {i}") for i in range(7)]
    outs = vllm_backend.generate(requests)
    assert len(outs) == 7
    assert [o.prompt_tokens for o in outs] == [o.prompt_tokens for o in vllm_backend.generate(requests)]


@pytest.mark.vllm
def test_vllm_honours_the_per_request_seed(vllm_backend):
    a, b, c = vllm_backend.generate([ask("Say something", SAMPLED, 1), ask("Say something", SAMPLED, 1), ask("Say something", SAMPLED, 2)])
    assert a.text == b.text
    again = vllm_backend.generate([ask("Say something", SAMPLED, 2)])[0]
    assert again.text == c.text


@pytest.mark.vllm
def test_vllm_and_transformers_see_the_same_prompt_tokens(vllm_backend, transformers_backend):
    request = ask("What is the boiling point of water?")
    assert vllm_backend.generate([request])[0].prompt_tokens == transformers_backend.generate([request])[0].prompt_tokens


def test_unknown_backend_is_a_clear_error(tiny_model):
    with pytest.raises(CharterError, match="unknown backend 'tgi'"):
        load_backend("tgi", str(tiny_model))


def test_model_folder_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(CharterError, match="no config.json"):
        load_backend("transformers", str(tmp_path))
