"""Training on charter exports with TRL 1.12: reward model (reward.py), DPO (dpo.py), PPO/GRPO/RLOO (ppo.py),
policy evaluation (evaluate.py); configs in config.py, `charter train ...` in cli.py. See training/README.md."""
