"""A reward model as a judge's backend: `AutoModelForSequenceClassification` with one output per reply.

It scores (conversation, assistant reply) pairs in batches, tokenized with the chat template exactly
as TRL's RewardTrainer tokenizes its training pairs, so a folder written by `charter train reward`
scores here as it did in training. It does not generate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from engine.backends.chat import check_model_dir
from engine.errors import CharterError


@dataclass(frozen=True)
class RewardModelOptions:
    """`backend_options` of `backend: reward_model`."""

    batch_size: int = 16  # replies per forward pass
    max_length: int = 1024  # longer inputs keep their last max_length tokens
    device: str | None = None  # default: cuda when available, else cpu

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_length < 8:
            raise ValueError("batch_size must be >= 1 and max_length >= 8")


def load_tokenizer(path: Path, padding_side: str = "right"):
    """The model's tokenizer with a pad token (EOS when it has none) and a chat template (the data are chats)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        raise CharterError(f"{path}: the tokenizer has no chat_template; charter's pairs are chats and need a chat model")
    tokenizer.padding_side = padding_side
    return tokenizer


def load_reward_model(path: Path, tokenizer):
    """AutoModelForSequenceClassification with one output (the reward), padding known to the model."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


class RewardModelBackend:
    name = "reward_model"
    Options = RewardModelOptions

    def __init__(self, model_path: str, options: RewardModelOptions | None = None, seed: int = 0):
        import torch

        options = options or RewardModelOptions()
        path = check_model_dir(model_path)
        self.model_id = str(path)
        self.device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = load_tokenizer(path)
        self.model = load_reward_model(path, self.tokenizer).to(self.device).eval()
        self.batch_size, self.max_length = options.batch_size, options.max_length

    def score_replies(self, conversations: Sequence[Sequence[dict]], replies: Sequence[str]) -> list[float]:
        """One scalar reward per (conversation, assistant reply), in order."""
        import torch

        ids = [
            self.tokenizer.apply_chat_template([*conv, {"role": "assistant", "content": reply}], tokenize=True,
                                               return_dict=True)["input_ids"][-self.max_length:]
            for conv, reply in zip(conversations, replies)
        ]
        out: list[float] = []
        with torch.inference_mode():
            for start in range(0, len(ids), self.batch_size):
                batch = self.tokenizer.pad({"input_ids": ids[start:start + self.batch_size]}, return_tensors="pt").to(self.device)
                out += self.model(**batch).logits[:, 0].float().cpu().tolist()
        return out

    def generate(self, requests):
        raise CharterError(f"{self.model_id}: a reward model scores replies; it cannot generate (use it only as judge)")

    def option_token_ids(self, options):
        raise CharterError(f"{self.model_id}: a reward model has no option tokens; use judge.mode: reward_model")

    def score_options(self, requests):
        raise CharterError(f"{self.model_id}: a reward model has no option tokens; use judge.mode: reward_model")
