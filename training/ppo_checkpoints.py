"""PPO that checkpoints and resumes: a small subclass over TRL 1.12's experimental PPOTrainer.

TRL's `PPOTrainer.train()` always starts at update 1, and the Trainer checkpointing it inherits fails on
transformers 5 (its policy+value wrapper is no PreTrainedModel). Here `checkpoint-N` is written with accelerate's
`save_state` (policy and value model, optimizer, scheduler, every process's RNG; DeepSpeed/FSDP-aware) plus the
trainer state (step, log); resuming loads them and runs only the updates that are left. The data order after a
resume starts a fresh pass over the (re-shuffled) prompts rather than continuing the interrupted one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

STATE = "trainer_state.json"


def checkpoints(output_dir: str | Path) -> list[Path]:
    """output_dir's checkpoint-N folders, oldest first."""
    folders = [p for p in Path(output_dir).glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return sorted(folders, key=lambda p: int(p.name.split("-")[-1]))


def resumable_ppo_trainer():
    """The subclass, built on first use (TRL's experimental module is imported lazily, as in ppo.py)."""
    from transformers import TrainerCallback
    from trl.experimental.ppo import PPOTrainer

    class RestoreState(TrainerCallback):
        """PPOTrainer.train() zeroes its state at the start; put the checkpoint's step, episode and log back."""

        def __init__(self, saved: dict, max_steps: int):
            self.saved, self.max_steps = saved, max_steps

        def on_train_begin(self, args, state, control, **kwargs):
            state.global_step = self.saved["global_step"]
            state.episode = self.saved["episode"]
            state.log_history = list(self.saved["log_history"])
            state.max_steps = self.max_steps

    class ResumablePPOTrainer(PPOTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.accelerator.register_for_checkpointing(self.lr_scheduler)

        def _save_checkpoint(self, model, trial):
            folder = Path(self.args.output_dir) / f"checkpoint-{self.state.global_step}"
            self.accelerator.save_state(str(folder))
            if self.accelerator.is_main_process:
                self.state.save_to_json(str(folder / STATE))
                keep = self.args.save_total_limit
                for old in checkpoints(self.args.output_dir)[:-keep] if keep else []:
                    shutil.rmtree(old, ignore_errors=True)
            self.accelerator.wait_for_everyone()

        def train(self, resume_from_checkpoint: str | None = None):
            if resume_from_checkpoint:
                self.accelerator.load_state(resume_from_checkpoint)
                saved = json.loads((Path(resume_from_checkpoint) / STATE).read_text())
                total = self.args.num_total_batches
                self.args.num_total_batches = max(0, total - saved["global_step"])
                self.add_callback(RestoreState(saved, total))
            super().train()

    return ResumablePPOTrainer
