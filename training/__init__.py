"""Training on charter datasets with TRL (reward model, DPO, PPO): not built yet, see the open issues."""
