"""Model folders in and out of training: path checks, tokenizers, LoRA, checkpoints to resume from, the saved result.

Every trainer leaves a full model folder in output_dir (LoRA adapters merged), loadable by charter's
backends and vLLM, plus `charter_train.json`: what was trained, on what, with which settings, on how many
processes. Under N processes the main process alone writes them (training/distributed.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import engine
from engine.backends.reward_model_backend import load_reward_model, load_tokenizer  # noqa: F401  (training's loaders too)
from engine.errors import CharterError
from training.config import LoraSettings
from training.distributed import is_main_process, is_sharded, wait_for_everyone, world_record

RECORD = "charter_train.json"


def model_folder(name_or_path: str, field: str) -> Path:
    """A local model folder (or "smollm2-135m"), checked before anything trains; errors name the config field."""
    from engine.models import resolve_model

    try:
        return resolve_model(name_or_path)
    except CharterError as exc:
        raise CharterError(f"{field}: {exc}") from None


def lora_config(settings: LoraSettings | None, task_type: str = "CAUSAL_LM"):
    """A peft LoraConfig, or None when the section has no `lora`."""
    if settings is None:
        return None
    try:
        from peft import LoraConfig
    except ImportError:
        raise CharterError("lora: needs the `peft` package (pip install peft)") from None
    target = list(settings.target_modules) if isinstance(settings.target_modules, tuple) else settings.target_modules
    return LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                      target_modules=target, task_type=task_type)


def last_checkpoint(output_dir: str | Path) -> str | None:
    """The newest checkpoint-N folder in output_dir, which `trainer.train` resumes from."""
    from transformers.trainer_utils import get_last_checkpoint

    folder = Path(output_dir)
    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def completed_run(output_dir: str | Path, settings: Any, dataset_dir: str | Path) -> Path | None:
    """output_dir when it already holds a model trained with these settings on this dataset (the record is written last)."""
    record = Path(output_dir) / RECORD
    if not record.is_file():
        return None
    done = json.loads(record.read_text())
    same_settings = done.get("settings") == json.loads(json.dumps(asdict(settings)))  # tuples read back as lists
    same_data = done.get("dataset") == str(Path(dataset_dir).resolve())
    return Path(output_dir) if same_settings and same_data else None


def save_trained(trainer, tokenizer, output_dir: str | Path, record: dict[str, Any], model=None) -> Path:
    """Write the final model (LoRA merged into the base; the adapter also kept in adapter/) and the training record.

    One writer: the main process. Under FSDP/DeepSpeed every process joins the Trainer's gather of the full
    weights (which the main process writes); under DDP or one process the main process saves `model` alone.
    The others wait until everything is on disk, so no process returns before the folder is complete."""
    out = Path(output_dir)
    model = trainer.model if model is None else model
    if is_sharded(trainer):
        trainer.save_model(str(out))
    elif is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        if hasattr(model, "merge_and_unload"):  # a peft model
            model.save_pretrained(out / "adapter")
            model = model.merge_and_unload()
        model.save_pretrained(out)
    if is_main_process():
        tokenizer.save_pretrained(out)
        packages = engine.package_versions("torch", "transformers", "trl", "peft", "datasets")
        (out / RECORD).write_text(json.dumps({**record, "packages": packages}, indent=2, default=str))
    wait_for_everyone()
    return out


def training_record(kind: str, settings: Any, dataset_dir: str | Path, trainer, resumed_from: str | None) -> dict[str, Any]:
    """What `charter_train.json` says: the trainer, its settings, the data, the resume point and the logged metrics."""
    return {
        "kind": kind,
        "settings": asdict(settings),
        "dataset": str(Path(dataset_dir).resolve()),
        "resumed_from": resumed_from,
        "global_step": trainer.state.global_step,
        **world_record(trainer, settings),
        "log_history": trainer.state.log_history,
    }
