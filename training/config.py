"""The `train:` section (YAML) -> frozen dataclasses, validated against `training/train.schema.json`.

Defaults live here, in one place, and are safe on a CPU: bf16 off, no gradient checkpointing, no
reporting integrations. A file may hold the section itself or a whole recipe with a `train:` key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from engine.errors import CharterError
from engine.validation import load_schema, read_yaml, schema_errors
from training.distributed import LaunchSettings, config_file

SCHEMA_PATH = Path(__file__).resolve().parent / "train.schema.json"
DPO_LOSS_TYPES = tuple(load_schema(SCHEMA_PATH)["$defs"]["dpo"]["properties"]["loss_type"]["enum"])
ALGORITHMS = ("ppo", "grpo", "rloo")
_PPO_ONLY = ("value_model", "num_ppo_epochs", "num_mini_batches", "missing_eos_penalty")
_GROUP_ONLY = ("num_generations",)  # grpo, rloo


@dataclass(frozen=True)
class LoraSettings:
    r: int = 16
    alpha: float = 32
    dropout: float = 0.05
    target_modules: str | tuple[str, ...] = "all-linear"


@dataclass(frozen=True, kw_only=True)
class TrainerSettings:
    """What every trainer shares; `max_steps` (when set) wins over `epochs`."""

    model: str  # local model folder, or "smollm2-135m"
    output_dir: str
    epochs: float = 1.0
    max_steps: int | None = None
    learning_rate: float
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    seed: int = 0
    save_steps: int = 50  # checkpoints are what resume reads
    logging_steps: int = 10
    bf16: bool = False  # GPU (Ampere+) only; CPU trains in float32
    gradient_checkpointing: bool = False  # saves GPU memory, costs time


@dataclass(frozen=True, kw_only=True)
class RewardSettings(TrainerSettings):
    output_dir: str = "runs/train/reward"
    learning_rate: float = 1e-4  # TRL's RewardConfig default
    max_length: int = 1024  # pairs with a longer side are dropped (TRL filters, it does not truncate)
    use_margin: bool = False  # margin = (p_chosen - 0.5) * margin_scale in the loss: -logsigmoid(r_c - r_r - margin)
    margin_scale: float = 1.0
    center_rewards_coefficient: float | None = None  # e.g. 0.01 pulls rewards toward mean zero
    eval_hh: str | None = None  # HH-RLHF file to evaluate on after training (e.g. harmless-base-test.jsonl.gz)
    eval_hh_limit: int = 200


@dataclass(frozen=True, kw_only=True)
class DPOSettings(TrainerSettings):
    output_dir: str = "runs/train/dpo"
    learning_rate: float = 1e-6  # TRL's DPOConfig default (full fine-tuning); LoRA wants ~1e-5..1e-4
    max_length: int = 1024  # prompt + response tokens; longer ones are truncated (keep_start)
    beta: float = 0.1
    loss_type: str = "sigmoid"  # any of DPO_LOSS_TYPES
    label_smoothing: float = 0.0  # robust DPO: probability a label is flipped; EXO: epsilon
    lora: LoraSettings | None = None  # LoRA: the reference is the base model (adapter disabled), no copy


@dataclass(frozen=True, kw_only=True)
class PPOSettings(TrainerSettings):
    output_dir: str = "runs/train/ppo"
    algorithm: str = "ppo"  # ppo (trl.experimental.ppo) | grpo | rloo (reward model as the reward function)
    reward_model: str = ""  # default: the reward section's output_dir
    value_model: str | None = None  # ppo: the value model starts as a copy of this; default: reward_model
    learning_rate: float = 3e-6  # TRL's PPOConfig default
    total_episodes: int | None = None  # sampled responses in all; default: epochs x prompts
    kl_coef: float = 0.05  # ppo: per-token KL penalty; grpo/rloo: beta
    response_length: int = 64  # new tokens per sampled response
    max_prompt_length: int = 512  # prompts with more tokens are left out
    stop_token: str | None = "eos"  # ppo: cut responses at EOS (None: always response_length tokens)
    missing_eos_penalty: float | None = None  # ppo: subtract from the score of responses without EOS
    temperature: float = 0.7
    num_ppo_epochs: int = 4
    num_mini_batches: int = 1
    num_generations: int = 4  # grpo/rloo: samples per prompt (batch_size must be a multiple)
    lora: LoraSettings | None = None


@dataclass(frozen=True)
class EvaluateConfig:
    """Trained policy vs the model it started from, on held-out prompts (the export's test split)."""

    harmless: str = "data/prompts/helpful.jsonl"  # refusal rate here is the over-refusal monitor
    limit: int = 16  # prompts from each source
    principles: int = 2  # comparison principles per pair (0 = all), each asked in both orders
    max_tokens: int = 64  # new tokens per (greedy) answer


@dataclass(frozen=True)
class TrainConfig:
    reward: RewardSettings | None = None
    dpo: DPOSettings | None = None
    ppo: PPOSettings | None = None
    launch: LaunchSettings | None = None  # charter run: each stage under `accelerate launch`; None: in-process


def load_train_config(path: str | Path) -> TrainConfig:
    """Read a train section (or a recipe with `train:`), validate it, build the dataclasses."""
    data = read_yaml(path, "train config")
    if isinstance(data, dict) and "train" in data:
        data, where = data["train"], f"{path}: train"
    else:
        where = str(path)
    return train_config(data, where)


def train_config(data: Any, source: str = "train") -> TrainConfig:
    """Validate a parsed train section; every bad field is named (`SOURCE: dpo.beta: ...`)."""
    data = {} if data is None else data
    errors = schema_errors(data, load_schema(SCHEMA_PATH), source)
    if errors:
        raise CharterError("\n".join(errors))
    seed = {"seed": data["seed"]} if "seed" in data else {}
    reward = _build(RewardSettings, {**seed, **data["reward"]}) if "reward" in data else None
    dpo = _build(DPOSettings, {**seed, **data["dpo"]}) if "dpo" in data else None
    ppo = None
    if "ppo" in data:
        raw = data["ppo"]
        _check_ppo(raw, reward, source)
        defaults = {"reward_model": reward.output_dir} if reward and "reward_model" not in raw else {}
        ppo = _build(PPOSettings, {**seed, **defaults, **raw})
    launch = LaunchSettings(**data["launch"]) if "launch" in data else None
    if launch and launch.config:
        config_file(launch.config)  # a missing launcher config fails here, before the engine stages run
    return TrainConfig(reward=reward, dpo=dpo, ppo=ppo, launch=launch)


def _build(cls: type, raw: dict[str, Any]):
    values = dict(raw)
    if values.get("lora") is not None:
        lora = dict(values["lora"])
        if isinstance(lora.get("target_modules"), list):
            lora["target_modules"] = tuple(lora["target_modules"])
        values["lora"] = LoraSettings(**lora)
    return cls(**values)


def _check_ppo(raw: dict[str, Any], reward: RewardSettings | None, source: str) -> None:
    """Cross-field rules the schema cannot say, each naming its field."""
    algorithm = raw.get("algorithm", "ppo")
    if "reward_model" not in raw and reward is None:
        raise CharterError(f"{source}: ppo.reward_model: missing (or add a reward section: its output_dir is the default)")
    unused = [k for k in (_GROUP_ONLY if algorithm == "ppo" else _PPO_ONLY) if k in raw]
    if unused:
        raise CharterError(f"{source}: ppo.{unused[0]}: not used by algorithm {algorithm!r}; remove it")
    batch = raw.get("batch_size", 8) * raw.get("gradient_accumulation_steps", 1)
    divisor = "num_mini_batches" if algorithm == "ppo" else "num_generations"
    if batch % raw.get(divisor, 1 if algorithm == "ppo" else 4):
        raise CharterError(
            f"{source}: ppo.{divisor}: batch_size x gradient_accumulation_steps ({batch}) must be a multiple of it"
        )


def evaluate_config(raw: dict[str, Any] | None, source: str = "evaluate") -> EvaluateConfig:
    """A recipe's `evaluate:` section, checked against training's schema; None: the defaults."""
    if raw is None:
        return EvaluateConfig()
    schema = load_schema(SCHEMA_PATH)
    errors = schema_errors(raw, {"$ref": "#/$defs/evaluate", "$defs": schema["$defs"]}, source)
    if errors:
        raise CharterError("\n".join(errors))
    return EvaluateConfig(**raw)


def training_arguments(settings: TrainerSettings, config_cls: type, **specific: Any):
    """A TRL config (RewardConfig, DPOConfig, ...) from our shared settings; `specific` adds or overrides."""
    import torch

    known = {f.name for f in fields(config_cls)}
    common = dict(
        output_dir=settings.output_dir,
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps or -1,
        learning_rate=settings.learning_rate,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        seed=settings.seed,
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=2,
        logging_steps=settings.logging_steps,
        bf16=settings.bf16,
        gradient_checkpointing=settings.gradient_checkpointing,
        use_cpu=not torch.cuda.is_available(),
        report_to=[],
    )
    return config_cls(**{k: v for k, v in common.items() if k in known} | specific)


def grpo_max_steps(settings: PPOSettings, n_prompts: int, world_size: int = 1) -> int:
    """GRPO/RLOO count optimizer steps; `total_episodes` (sampled responses) or epochs over the prompts set them.
    Each step samples batch_size x accumulation completions on every one of the world_size processes."""
    episodes = settings.total_episodes or math.ceil(settings.epochs * n_prompts * settings.num_generations)
    return max(1, math.ceil(episodes / (settings.batch_size * settings.gradient_accumulation_steps * world_size)))
