"""Training under N processes (torchrun, accelerate launch, several nodes): who prepares data first, who writes and
who prints, what the record says about the world, and how `charter run` starts a launcher for its training stage.

The launchers set RANK/WORLD_SIZE; TRL's trainers (via accelerate) do the data parallelism. charter only makes sure
that every file it writes itself has exactly one writer (the global main process) and that the others wait for it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from engine.errors import CharterError

CONFIGS = Path(__file__).resolve().parent / "configs"  # accelerate launcher configs shipped with charter


@dataclass(frozen=True)
class LaunchSettings:
    """`train: {launch: ...}` in a recipe: `charter run` trains under `accelerate launch` with these."""

    processes: int = 2  # processes in all (one per GPU; on a CPU-only machine, gloo processes)
    config: str | None = None  # an accelerate config file, e.g. training/configs/zero3.yaml; None: plain DDP


def _env_int(names: tuple[str, ...], default: int) -> int:
    return next((int(os.environ[n]) for n in names if os.environ.get(n)), default)


def world_size() -> int:
    """Processes in the job, as torchrun/accelerate (or mpirun, for accelerate's multi-CPU) set it; 1 when not launched."""
    return _env_int(("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE"), 1)


def is_main_process() -> bool:
    """The global rank 0 (the one writer); True when not launched."""
    return _env_int(("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK"), 0) == 0


def check_launch() -> None:
    """Refuse the silent single process of `accelerate launch --cpu --num_processes N` (accelerate runs N CPU
    processes only through mpirun); name the commands that do start N processes."""
    asked_for_more = "MASTER_ADDR" in os.environ and os.environ.get("ACCELERATE_USE_CPU", "").lower() == "true"
    started_more = any(k in os.environ for k in ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE"))
    if asked_for_more and not started_more:
        raise CharterError(
            "`accelerate launch --cpu --num_processes N` starts one process (accelerate needs mpirun for several CPU "
            "processes). On CPUs use `accelerate launch --multi_gpu --num_processes N ...` (gloo when there is no GPU) "
            "or `torchrun --nproc_per_node N $(which charter) ...`; drop --num_processes to train in one process"
        )


def refuse_several_processes(command: str) -> None:
    """For commands that score on one process: a clear line instead of N processes doing the same work."""
    if world_size() > 1:
        raise CharterError(f"{command} runs on one process; run it without torchrun/accelerate launch "
                           f"(it was started as one of {world_size()} processes)")


def _state():
    from accelerate import PartialState

    return PartialState()


@contextmanager
def main_process_first() -> Iterator[None]:
    """Dataset preparation on the main process first, the others after it (they then read its caches)."""
    if world_size() == 1:
        yield
        return
    with _state().main_process_first():
        yield


def wait_for_everyone() -> None:
    if world_size() > 1:
        _state().wait_for_everyone()


def is_sharded(trainer) -> bool:
    """FSDP or DeepSpeed: the weights are spread over the processes, so saving them is a collective."""
    return bool(getattr(trainer, "is_fsdp_enabled", False) or getattr(trainer, "is_deepspeed_enabled", False))


def check_sharding(trainer, lora) -> None:
    """Say when FSDP/DeepSpeed was asked for but accelerate fell back to DDP (it shards only on GPUs and other
    accelerators, not CPUs); refuse LoRA when sharded (the merged save needs the whole model on one process)."""
    asked = [k.split("_")[-1] for k in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED")
             if os.environ.get(k, "").lower() == "true"]
    if asked and not is_sharded(trainer) and is_main_process():
        print(f"warning: {asked[0]} was asked for, but accelerate runs {trainer.accelerator.distributed_type.value} "
              "(FSDP and DeepSpeed need GPUs); every process holds the whole model", file=sys.stderr)
    if lora is not None and is_sharded(trainer):
        raise CharterError("lora: not supported under FSDP/DeepSpeed by charter (merging the adapter needs the whole "
                           "model on one process); train LoRA under plain DDP (torchrun, or training/configs/ddp.yaml)")


def world_record(trainer, settings) -> dict:
    """What charter_train.json says about the processes: world size, per-device batch, accumulation, effective batch."""
    args = trainer.args
    world = trainer.accelerator.num_processes
    return {
        "world_size": world,
        "distributed_type": str(trainer.accelerator.distributed_type).split(".")[-1],
        "per_device_batch_size": settings.batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "effective_batch_size": settings.batch_size * args.gradient_accumulation_steps * world,
    }


def config_file(name: str) -> Path:
    """A launcher config: a file path, or the name of one charter ships (`zero3` -> training/configs/zero3.yaml)."""
    for path in (Path(name), CONFIGS / f"{name}.yaml"):
        if path.is_file():
            return path
    shipped = ", ".join(sorted(p.stem for p in CONFIGS.glob("*.yaml")))
    raise CharterError(f"train.launch.config: {name}: no such file, nor a shipped config ({shipped})")


def launch_command(subcommand: str, dataset_dir: str | Path, config_path: str | Path, launch: LaunchSettings) -> list[str]:
    """`accelerate launch` of one `charter train SUBCOMMAND` over `launch.processes` processes."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(launch.processes)]
    if launch.config:
        cmd += ["--config_file", str(config_file(launch.config))]
    elif launch.processes > 1:
        cmd += ["--multi_gpu"]  # plain DDP; on a machine without GPUs accelerate falls back to gloo
    return cmd + ["-m", "training.cli", "train", subcommand, "--dataset", str(dataset_dir), "--config", str(config_path)]


def launch_training(subcommand: str, dataset_dir: str | Path, config_path: str | Path, launch: LaunchSettings) -> None:
    """Run one training stage under the launcher and wait; a failed launch is a CharterError naming the command."""
    cmd = launch_command(subcommand, dataset_dir, config_path, launch)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                                      os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(cmd, env=env, check=False)
    if done.returncode != 0:
        raise CharterError(f"train {subcommand}: the launcher exited with {done.returncode}: {' '.join(cmd)}")
