"""Reward model: TRL's RewardTrainer on a charter export, and its accuracy on held-out and human-labelled pairs.

The model is AutoModelForSequenceClassification with one output over the chat-templated conversation
(prompt + reply), exactly as RewardTrainer tokenizes it. Loss: -logsigmoid(r_chosen - r_rejected - margin);
with `use_margin` the margin is the judge's confidence, (p_chosen - 0.5) * margin_scale, so confident
labels must be separated by more. Without it the export's own `margin` column is removed, because
RewardTrainer uses any column of that name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import polars as pl

from engine.errors import CharterError
from training.config import RewardSettings, training_arguments
from training.data import heldout_split, load_pairs, pairs_frame
from training.distributed import check_sharding, main_process_first
from training.models import (
    completed_run, last_checkpoint, load_reward_model, load_tokenizer, model_folder, save_trained, training_record,
)

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
REPORT = "reward_eval.json"


def train_reward_model(dataset_dir: str | Path, cfg: RewardSettings) -> Path:
    """Train (or resume) a reward model on the export's train split; returns the folder holding it."""
    from transformers import set_seed
    from trl import RewardConfig, RewardTrainer

    with main_process_first():
        data = load_pairs(dataset_dir)
    if cfg.use_margin and "p_chosen" not in data["train"].column_names:
        raise CharterError(f"{dataset_dir}: reward.use_margin needs a p_chosen column (the judge's confidence); it has none")
    path = model_folder(cfg.model, "reward.model")
    if done := completed_run(cfg.output_dir, cfg, dataset_dir):
        return done
    tokenizer = load_tokenizer(path)
    set_seed(cfg.seed)  # the new score head is initialised at random
    model = load_reward_model(path, tokenizer)
    args = training_arguments(cfg, RewardConfig, max_length=cfg.max_length,
                              center_rewards_coefficient=cfg.center_rewards_coefficient)
    trainer = RewardTrainer(model=model, args=args, train_dataset=with_margin(data["train"], cfg), processing_class=tokenizer)
    check_sharding(trainer, None)
    resume = last_checkpoint(cfg.output_dir)
    trainer.train(resume_from_checkpoint=resume)
    return save_trained(trainer, tokenizer, cfg.output_dir, training_record("reward", cfg, dataset_dir, trainer, resume))


def with_margin(split, cfg: RewardSettings):
    """Set the `margin` column RewardTrainer reads from the judge's confidence, or remove it."""
    if "margin" in split.column_names:
        split = split.remove_columns("margin")
    if not cfg.use_margin:
        return split
    margins = [(p - 0.5) * cfg.margin_scale for p in split["p_chosen"]]
    return split.add_column("margin", margins)


class RewardScorer:
    """A reward model folder scoring replies to conversations (engine's reward-model backend, batched)."""

    def __init__(self, model_dir: str | Path, batch_size: int = 16, max_length: int = 1024, device: str | None = None):
        from engine.backends import load_backend

        path = model_folder(str(model_dir), "reward model")
        self.backend = load_backend("reward_model", str(path), {"batch_size": batch_size, "max_length": max_length, "device": device})

    def score(self, conversations: Sequence[Sequence[dict]], replies: Sequence[str]) -> np.ndarray:
        """One scalar per (conversation, assistant reply); over-long inputs keep their last max_length tokens."""
        return np.asarray(self.backend.score_replies(conversations, replies), dtype=np.float64)


def _conversations(pairs: pl.DataFrame) -> list[list[dict]]:
    if "conversation" in pairs.columns:
        return pairs["conversation"].to_list()
    return [[{"role": "user", "content": p}] for p in pairs["prompt"]]


def distribution(values: np.ndarray) -> dict[str, float]:
    """Mean, spread and quantiles of a set of rewards (what a histogram plot needs, compactly)."""
    if values.size == 0:
        return {}
    summary = {"mean": float(values.mean()), "std": float(values.std()), "min": float(values.min()), "max": float(values.max())}
    return summary | {f"q{round(q * 100):02d}": float(np.quantile(values, q)) for q in QUANTILES}


def evaluate_reward_model(model: str | Path | RewardScorer, pairs: pl.DataFrame) -> dict[str, Any]:
    """Accuracy (reward(response_a) > reward(response_b), ties half; response_a is the preferred one) beside the
    always-longer baseline, and the reward distributions."""
    from engine.judge_eval import length_baseline

    scorer = model if isinstance(model, RewardScorer) else RewardScorer(model)
    if pairs.height == 0:
        return {"pairs": 0}
    conversations = _conversations(pairs)
    chosen = scorer.score(conversations, pairs["response_a"].to_list())
    rejected = scorer.score(conversations, pairs["response_b"].to_list())
    gap = chosen - rejected
    return {
        "pairs": pairs.height,
        "accuracy": float(((gap > 0) + 0.5 * (gap == 0)).mean()),
        "length_baseline": length_baseline(pairs),
        "chance": 0.5,
        "mean_gap": float(gap.mean()),
        "rewards": {"chosen": distribution(chosen), "rejected": distribution(rejected), "gap": distribution(gap)},
    }


def reward_report(model_dir: str | Path, dataset_dir: str | Path | None = None, hh_path: str | Path | None = None,
                  hh_limit: int = 200, seed: int = 0) -> dict[str, Any]:
    """Held-out accuracy on the export's test split and on an HH-RLHF file; written to MODEL/reward_eval.json."""
    from engine.preferences import load_preferences

    scorer = RewardScorer(model_dir)
    report: dict[str, Any] = {"model": str(model_dir)}
    if dataset_dir is not None:
        test = heldout_split(load_pairs(dataset_dir))
        report["heldout"] = evaluate_reward_model(scorer, pairs_frame(test)) if test is not None else {"pairs": 0}
    if hh_path is not None:
        human = load_preferences(hh_path, limit=hh_limit, seed=seed)
        report["hh_rlhf"] = {"source": str(hh_path), "rows_skipped": len(human.skipped),
                             **evaluate_reward_model(scorer, human.pairs)}
    (Path(model_dir) / REPORT).write_text(json.dumps(report, indent=2))
    return report
