"""DPO: TRL's DPOTrainer on a charter export, with the loss variant, beta and label smoothing named in the config.

The reference is a frozen copy of the starting model; with LoRA there is no copy, since TRL computes the
reference log-probabilities with the adapter disabled (the base model). The saved model has LoRA merged.
"""

from __future__ import annotations

from pathlib import Path

from training.config import DPOSettings, training_arguments
from training.data import load_pairs
from training.distributed import check_sharding, main_process_first
from training.models import (
    completed_run, last_checkpoint, load_tokenizer, lora_config, model_folder, save_trained, training_record,
)


def train_dpo(dataset_dir: str | Path, cfg: DPOSettings) -> Path:
    """Train (or resume) a policy with DPO on the export's train split; returns the folder holding it."""
    from transformers import AutoModelForCausalLM, set_seed
    from trl import DPOConfig, DPOTrainer

    with main_process_first():
        data = load_pairs(dataset_dir)
    path = model_folder(cfg.model, "dpo.model")
    if done := completed_run(cfg.output_dir, cfg, dataset_dir):
        return done
    tokenizer = load_tokenizer(path)
    peft = lora_config(cfg.lora)
    set_seed(cfg.seed)
    model = AutoModelForCausalLM.from_pretrained(path)
    reference = None if peft else AutoModelForCausalLM.from_pretrained(path)
    args = training_arguments(cfg, DPOConfig, beta=cfg.beta, loss_type=[cfg.loss_type],
                              label_smoothing=cfg.label_smoothing, max_length=cfg.max_length)
    trainer = DPOTrainer(model=model, ref_model=reference, args=args, train_dataset=data["train"],
                         processing_class=tokenizer, peft_config=peft)
    check_sharding(trainer, cfg.lora)
    resume = last_checkpoint(cfg.output_dir)
    trainer.train(resume_from_checkpoint=resume)
    return save_trained(trainer, tokenizer, cfg.output_dir, training_record("dpo", cfg, dataset_dir, trainer, resume))
