"""Training over TRL on a charter-format export: config validation, reward model, DPO (full and LoRA), PPO and GRPO,
policy evaluation. A tiny Llama, a few steps each, CPU only; the planted signal is a marker word in chosen replies."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from conftest import REPO
from engine.errors import CharterError

pytest.importorskip("trl")

MARKER = "zebra"
WORDS = "the a sun rain cat dog tree water light bread river stone cloud wind green blue small large".split()


def pair_rows(n: int, seed: int) -> list[dict]:
    """Records as `charter export` writes them; the chosen reply (and only it) holds the marker word."""
    lines = (REPO / "data" / "prompts" / "helpful.jsonl").read_text().splitlines()
    prompts = [json.loads(line)["prompt"] for line in lines if line.strip()]
    rng = random.Random(seed)
    filler = lambda: " ".join(rng.choice(WORDS) for _ in range(6))  # noqa: E731
    rows = []
    for i in range(n):
        prompt = rng.choice(prompts)
        rows.append({
            "prompt": [{"role": "user", "content": prompt}],
            "chosen": [{"role": "assistant", "content": f"{filler()} {MARKER} {filler()}"}],
            "rejected": [{"role": "assistant", "content": f"{filler()} {rng.choice(WORDS)} {filler()}"}],
            "pair_id": f"pair-{seed}-{i}", "prompt_id": f"prompt-{prompt[:12]}", "p_chosen": 0.8, "margin": 0.3,
        })
    return rows


def pair_export(out: Path, train: int, test: int) -> Path:
    """An export folder (DatasetDict in the save_to_disk layout) of `train` + `test` generated pairs."""
    from datasets import Dataset, DatasetDict

    splits = {"train": Dataset.from_list(pair_rows(train, 0)), "test": Dataset.from_list(pair_rows(test, 1))}
    DatasetDict(splits).save_to_disk(str(out / "dataset"))
    return out


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return pair_export(tmp_path_factory.mktemp("export"), 64, 32)


def settings(section: str, model, out, **values):
    from training.config import train_config

    base = {"model": str(model), "output_dir": str(out), "batch_size": 8, "logging_steps": 5, "save_steps": 10}
    return getattr(train_config({section: {**base, **values}}), section)


@pytest.fixture(scope="module")
def reward_dir(export_dir, tiny_model, tmp_path_factory):
    from training.reward import train_reward_model

    cfg = settings("reward", tiny_model, tmp_path_factory.mktemp("rm"), max_steps=30, learning_rate=1e-3, max_length=128)
    return train_reward_model(export_dir, cfg)


@pytest.fixture(scope="module")
def dpo_dir(export_dir, tiny_model, tmp_path_factory):
    from training.dpo import train_dpo

    cfg = settings("dpo", tiny_model, tmp_path_factory.mktemp("dpo"), max_steps=10, learning_rate=5e-4, max_length=128)
    return train_dpo(export_dir, cfg)


# --- config -----------------------------------------------------------------------------------------------


def test_train_config_errors_name_every_bad_field(tmp_path):
    from training.config import load_train_config

    path = tmp_path / "train.yaml"
    path.write_text("dpo: {model: m, loss_type: sigmoidd, beta: -1}\nreward: {model: m, lr: 1}\n")
    with pytest.raises(CharterError) as info:
        load_train_config(path)
    message = str(info.value)
    assert f"{path}: dpo.loss_type: 'sigmoidd' is not one of" in message and "dpo.beta" in message
    assert "reward: unknown key(s) 'lr'" in message


def test_a_recipe_train_section_is_read_and_ppo_defaults_to_the_trained_reward_model(tmp_path):
    from training.config import load_train_config

    path = tmp_path / "recipe.yaml"
    path.write_text("name: x\ntrain:\n  seed: 7\n  reward: {model: m, output_dir: out/rm}\n  ppo: {model: m, kl_coef: 0.1}\n")
    cfg = load_train_config(path)
    assert cfg.ppo.reward_model == "out/rm" and cfg.ppo.kl_coef == 0.1 and cfg.ppo.seed == cfg.reward.seed == 7
    assert cfg.dpo is None and cfg.ppo.stop_token == "eos"


@pytest.mark.parametrize("name", ["train-smollm2-cpu.yaml", "train-gpu.yaml"])
def test_example_train_recipes_are_valid(name):
    from training.config import load_train_config

    cfg = load_train_config(REPO / "data" / "recipes" / name)
    assert cfg.reward and cfg.dpo and cfg.ppo and cfg.ppo.reward_model == cfg.reward.output_dir


def test_ppo_without_a_reward_model_and_options_of_another_algorithm_are_refused():
    from training.config import train_config

    with pytest.raises(CharterError, match="ppo.reward_model: missing"):
        train_config({"ppo": {"model": "m"}})
    with pytest.raises(CharterError, match="ppo.num_generations: not used by algorithm 'ppo'"):
        train_config({"ppo": {"model": "m", "reward_model": "r", "num_generations": 4}})
    with pytest.raises(CharterError, match="ppo.num_generations: batch_size"):
        train_config({"ppo": {"model": "m", "reward_model": "r", "algorithm": "grpo", "batch_size": 6}})


def test_trainer_arguments_are_cpu_safe_by_default(tmp_path):
    from trl import DPOConfig

    from training.config import training_arguments

    cfg = settings("dpo", "m", tmp_path, beta=0.2, loss_type="ipo")
    args = training_arguments(cfg, DPOConfig, beta=cfg.beta, loss_type=[cfg.loss_type])
    assert args.bf16 is False and args.report_to == [] and args.gradient_checkpointing is False
    assert args.use_cpu == (not torch.cuda.is_available())
    assert args.beta == 0.2 and args.loss_type == ["ipo"] and args.max_steps == -1


# --- input checks before training -------------------------------------------------------------------------


@pytest.mark.parametrize("section", ["reward", "dpo", "ppo"])
def test_a_wrong_model_path_fails_before_training_naming_the_field(section, export_dir, tmp_path):
    from training.dpo import train_dpo
    from training.ppo import train_ppo
    from training.reward import train_reward_model

    extra = {"reward_model": str(tmp_path)} if section == "ppo" else {}
    cfg = settings(section, tmp_path / "no-such-model", tmp_path / "out", **extra)
    train = {"reward": train_reward_model, "dpo": train_dpo, "ppo": train_ppo}[section]
    with pytest.raises(CharterError, match=f"{section}.model: model path .*no-such-model"):
        train(export_dir, cfg)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("section", ["reward", "dpo", "ppo"])
def test_a_dataset_without_pair_columns_fails_before_training(section, tiny_model, tmp_path):
    from datasets import Dataset, DatasetDict

    from training.dpo import train_dpo
    from training.ppo import train_ppo
    from training.reward import train_reward_model

    rows = [{k: v for k, v in r.items() if k != "rejected"} for r in pair_rows(4, 0)]
    DatasetDict({"train": Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "export" / "dataset"))
    cfg = settings(section, tiny_model, tmp_path / "out", **({"reward_model": str(tiny_model)} if section == "ppo" else {}))
    train = {"reward": train_reward_model, "dpo": train_dpo, "ppo": train_ppo}[section]
    with pytest.raises(CharterError, match="lacks column\\(s\\) rejected"):
        train(tmp_path / "export", cfg)
    with pytest.raises(CharterError, match="dataset folder not found"):
        train(tmp_path / "nowhere", cfg)


# --- reward model -----------------------------------------------------------------------------------------


def test_reward_training_changes_the_weights(reward_dir, tiny_model):
    from safetensors.torch import load_file

    before, after = load_file(tiny_model / "model.safetensors"), load_file(reward_dir / "model.safetensors")
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(before[name], after[name])
    assert "score.weight" in after


def test_reward_model_learns_the_planted_marker_on_held_out_pairs(reward_dir, export_dir):
    from training.reward import reward_report

    report = reward_report(reward_dir, export_dir)
    heldout = report["heldout"]
    assert heldout["pairs"] == 32 and heldout["accuracy"] >= 0.9
    assert heldout["rewards"]["chosen"]["q50"] > heldout["rewards"]["rejected"]["q50"]
    assert json.loads((reward_dir / "reward_eval.json").read_text())["heldout"]["accuracy"] == heldout["accuracy"]


def test_reward_model_is_scored_on_human_style_labels_beside_the_length_baseline(reward_dir):
    from engine.preferences import load_preferences
    from training.reward import evaluate_reward_model

    report = evaluate_reward_model(reward_dir, load_preferences(REPO / "data" / "eval" / "preferences.jsonl", limit=8).pairs)
    assert 0 <= report["accuracy"] <= 1 and 0 <= report["length_baseline"] <= 1 and report["pairs"] > 0


def test_rerunning_a_finished_training_does_nothing(reward_dir, export_dir, tiny_model):
    from training.reward import train_reward_model

    record = (reward_dir / "charter_train.json").read_text()
    cfg = settings("reward", tiny_model, reward_dir, max_steps=30, learning_rate=1e-3, max_length=128)
    assert train_reward_model(export_dir, cfg) == reward_dir
    assert (reward_dir / "charter_train.json").read_text() == record


def test_an_interrupted_training_resumes_from_its_last_checkpoint(reward_dir, export_dir, tiny_model, tmp_path):
    from training.reward import train_reward_model

    interrupted = shutil.copytree(reward_dir, tmp_path / "rm")
    (interrupted / "charter_train.json").unlink()  # killed after checkpoint-20, before the end
    shutil.rmtree(interrupted / "checkpoint-30")
    cfg = settings("reward", tiny_model, interrupted, max_steps=30, learning_rate=1e-3, max_length=128)
    record = json.loads((train_reward_model(export_dir, cfg) / "charter_train.json").read_text())
    assert record["resumed_from"].endswith("checkpoint-20") and record["global_step"] == 30
    assert json.loads((reward_dir / "charter_train.json").read_text())["resumed_from"] is None


def test_margin_comes_from_judge_confidence_only_when_asked(export_dir, tmp_path):
    from training.data import load_pairs
    from training.reward import with_margin

    train = load_pairs(export_dir)["train"]
    assert "margin" not in with_margin(train, settings("reward", "m", tmp_path)).column_names  # TRL would use it
    scaled = with_margin(train, settings("reward", "m", tmp_path, use_margin=True, margin_scale=4.0))
    assert scaled["margin"][0] == pytest.approx((0.8 - 0.5) * 4.0)


# --- DPO --------------------------------------------------------------------------------------------------


def logratio_margin(policy, reference, tokenizer, rows) -> float:
    """Mean over pairs of [log pi/pi_ref](chosen) - [log pi/pi_ref](rejected), with TRL's chat-template split."""
    from training.evaluate import response_logprobs

    def split(row, side):
        prompt = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, return_dict=True)["input_ids"]
        full = tokenizer.apply_chat_template(row["prompt"] + row[side], return_dict=True)["input_ids"]
        return prompt, full[len(prompt):]

    total = 0.0
    for side, sign in (("chosen", 1), ("rejected", -1)):
        pairs = [split(r, side) for r in rows]
        logprobs = zip(response_logprobs(policy, tokenizer, pairs, 8), response_logprobs(reference, tokenizer, pairs, 8))
        ratio = [p.sum() - r.sum() for p, r in logprobs]
        total += sign * float(sum(ratio)) / len(rows)
    return total


def test_dpo_widens_the_chosen_vs_rejected_log_ratio_margin(dpo_dir, tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rows = pair_rows(64, 0)[:16]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    reference = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    assert logratio_margin(reference, reference, tokenizer, rows) == 0.0
    assert logratio_margin(AutoModelForCausalLM.from_pretrained(dpo_dir).eval(), reference, tokenizer, rows) > 1.0
    record = json.loads((dpo_dir / "charter_train.json").read_text())
    assert record["settings"]["loss_type"] == "sigmoid" and record["global_step"] == 10


def test_lora_dpo_trains_an_adapter_and_saves_a_merged_model(export_dir, tiny_model, tmp_path):
    pytest.importorskip("peft")
    from safetensors.torch import load_file

    from training.dpo import train_dpo

    cfg = settings("dpo", tiny_model, tmp_path / "lora", max_steps=3, learning_rate=1e-3, max_length=128,
                   loss_type="robust", label_smoothing=0.1, lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]})
    out = train_dpo(export_dir, cfg)
    assert (out / "adapter" / "adapter_config.json").is_file() and (out / "config.json").is_file()
    merged, base = load_file(out / "model.safetensors"), load_file(tiny_model / "model.safetensors")
    assert set(merged) == set(base)  # plain weights, no lora_A/lora_B left
    assert not torch.equal(merged["model.layers.0.self_attn.q_proj.weight"], base["model.layers.0.self_attn.q_proj.weight"])
    assert torch.equal(merged["model.layers.0.mlp.up_proj.weight"], base["model.layers.0.mlp.up_proj.weight"])


# --- PPO / GRPO -------------------------------------------------------------------------------------------


def test_ppo_runs_against_the_reward_model_and_logs_kl(export_dir, tiny_model, reward_dir, tmp_path):
    from training.ppo import train_ppo

    cfg = settings("ppo", tiny_model, tmp_path / "ppo", reward_model=str(reward_dir), total_episodes=8, batch_size=4,
                   response_length=8, learning_rate=1e-4, kl_coef=0.05, logging_steps=1)
    out = train_ppo(export_dir, cfg)
    logs = json.loads((out / "charter_train.json").read_text())["log_history"]
    kl = [entry["objective/kl"] for entry in logs if "objective/kl" in entry]
    assert len(kl) == 2 and all(isinstance(x, float) for x in kl)
    assert all("objective/scores" in entry for entry in logs if "objective/kl" in entry)
    assert (out / "config.json").is_file()


def test_grpo_uses_the_reward_model_as_its_reward_function(export_dir, tiny_model, reward_dir, tmp_path):
    from training.ppo import train_ppo

    cfg = settings("ppo", tiny_model, tmp_path / "grpo", algorithm="grpo", reward_model=str(reward_dir), total_episodes=8,
                   batch_size=4, num_generations=4, response_length=8, learning_rate=1e-4, logging_steps=1)
    logs = json.loads((train_ppo(export_dir, cfg) / "charter_train.json").read_text())["log_history"]
    assert sum("kl" in entry and "reward" in entry for entry in logs) == 2


# --- policy evaluation ------------------------------------------------------------------------------------


def test_refusal_detector_catches_common_phrasings():
    from training.evaluate import is_refusal

    assert is_refusal("I'm sorry, but I can't help with that.") and is_refusal("As an AI, I cannot do this")
    assert is_refusal("I can\u2019t do that") and not is_refusal("Sure! Bread needs flour, water and time.")


def test_a_policy_judged_against_itself_ties_with_zero_kl(tiny_model, transformers_backend, tmp_path):
    from engine.constitution import load_constitution
    from training.evaluate import evaluate_policy

    report = evaluate_policy(tiny_model, tiny_model, ["How do I bake bread?", "Why is the sky blue?"], transformers_backend,
                             load_constitution(), harmless_prompts=["What is rain?"], max_tokens=8, out_dir=tmp_path)
    assert report["win_rate"] == 0.5 and report["identical"] == 2 and report["ties"] == 2
    assert report["kl_to_reference"]["per_token"] == pytest.approx(0.0, abs=1e-6)
    assert report["monitors"]["policy"] == report["monitors"]["reference"]


def test_policy_evaluation_reports_win_rate_kl_and_monitors(dpo_dir, tiny_model, reward_dir, transformers_backend, tmp_path):
    from engine.constitution import load_constitution
    from training.evaluate import evaluate_policy

    prompts = ["How do I bake bread?", "Why is the sky blue?", "What causes rain?"]
    report = evaluate_policy(dpo_dir, tiny_model, prompts, transformers_backend, load_constitution(),
                             harmless_prompts=["What is a prime number?"], reward_model_dir=reward_dir, max_tokens=8,
                             out_dir=tmp_path)
    assert 0 <= report["win_rate"] <= 1 and report["unscored"] == 0 and report["prompts"] == 3
    assert report["kl_to_reference"]["per_token"] != 0.0 and report["kl_to_reference"]["samples"] > 0
    for side in ("policy", "reference"):
        monitor = report["monitors"][side]
        assert {"mean_length_chars", "refusal_rate", "harmless_refusal_rate", "reward_mean"} <= set(monitor)
        assert isinstance(monitor["reward_mean"], float)
    assert json.loads((tmp_path / "policy_eval.json").read_text())["win_rate"] == report["win_rate"]
    assert "win rate (policy vs reference)" in (tmp_path / "policy_eval.txt").read_text()


# --- CLI --------------------------------------------------------------------------------------------------


def test_cli_turns_config_and_input_errors_into_exit_code_1(export_dir, tmp_path):
    from training.cli import train_app

    config = tmp_path / "train.yaml"
    config.write_text("reward: {model: /no/such/model}\n")
    result = CliRunner().invoke(train_app, ["dpo", "--dataset", str(export_dir), "--config", str(config)])
    assert result.exit_code == 1 and "no `dpo:` section" in result.output
    result = CliRunner().invoke(train_app, ["reward", "--dataset", str(export_dir), "--config", str(config)])
    assert result.exit_code == 1 and "reward.model" in result.output and "Traceback" not in result.output
