"""The "ray" executor on a local Ray cluster (2 CPUs, tiny model, transformers): the same rows as the local
executor, no row lost or doubled when an actor is killed mid-stage, and a killed driver resumes."""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from conftest import REPO, write_recipe
from engine.config import load_recipe
from engine.errors import CharterError
from engine.runner import RunResult, run_recipe

ray = pytest.importorskip("ray", reason="Ray not installed; `make test` installs charter[ray]")
psutil = pytest.importorskip("psutil")  # comes with Ray

CHARTER = [sys.executable, "-m", "training.cli"]
TABLES = {"responses": "response_id", "revisions": "revision_id", "pairs": "pair_id", "judged": "pair_id"}
OPTIONS = dict(
    chunk_size=2,
    prompts={"path": str(REPO / "data" / "prompts" / "helpful.jsonl"), "limit": 12},
    respond={"n": 1, "sampling": {"temperature": 0.0, "max_tokens": 24}},
    critique={"rounds": 2, "sampling": {"temperature": 0.0, "max_tokens": 24}},
)


@pytest.fixture(scope="module")
def ray_address():
    """A 2-CPU Ray cluster for this module; runs join it by its address and leave it up."""
    context = ray.init(num_cpus=2, object_store_memory=150 * 2**20, include_dashboard=False, logging_level=logging.WARNING)
    yield context.address_info["gcs_address"]
    ray.shutdown()


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, tiny_model) -> Path:
    folder = tmp_path_factory.mktemp("local")
    result = run_recipe(load_recipe(write_recipe(folder, tiny_model, judge={"principles": 1}, **OPTIONS)))
    result.close()
    return result.run_dir


def ray_recipe(folder: Path, model: Path, address: str, **overrides) -> Path:
    execution = {"engine": "ray", "address": address, "replicas": 2}
    return write_recipe(folder, model, **{**OPTIONS, "execution": execution, **overrides})


def assert_same_rows(run: Path, reference: Path, tables=tuple(TABLES)) -> None:
    """Same keys, same texts, same judge probabilities (float tolerance); every id once."""
    for table in tables:
        got = pl.read_parquet(run / f"{table}.parquet").sort(TABLES[table], "row_key")
        want = pl.read_parquet(reference / f"{table}.parquet").sort(TABLES[table], "row_key")
        if table == "revisions":
            got, want = got.sort("response_id", "round"), want.sort("response_id", "round")
        assert_frame_equal(got, want, check_exact=False, rel_tol=1e-5, abs_tol=1e-6)
        assert got.select(TABLES[table], *(["round"] if table == "revisions" else [])).is_unique().all(), table


def shard_rows(run: Path, table: str) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(s) for s in sorted((run / "shards" / table).glob("*.parquet"))], how="diagonal_relaxed")


def stage_workers() -> list[psutil.Process]:
    """The actor processes running a stage (Ray titles them after the class)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any("StageWorker" in part for part in proc.info["cmdline"] or []):
            found.append(proc)
    return found


def wait_for_shards(shard_dir: Path, at_least: int, alive, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while len(list(shard_dir.glob("*.parquet"))) < at_least:
        assert alive(), "the run ended before the kill"
        assert time.monotonic() < deadline, f"no shard in {shard_dir} in time"
        time.sleep(0.01)


def test_a_ray_run_gives_the_local_executors_rows(tmp_path, tiny_model, ray_address, local_run):
    result = run_recipe(load_recipe(ray_recipe(tmp_path, tiny_model, ray_address, judge={"principles": 1})))
    assert_same_rows(result.run_dir, local_run)
    assert result.manifest["recipe"]["execution"]["engine"] == "ray"
    assert ray.is_initialized()  # a cluster the run did not start is left up


def test_an_actor_killed_mid_stage_is_retried_with_no_row_lost_or_doubled(tmp_path, tiny_model, ray_address, local_run):
    recipe = load_recipe(ray_recipe(tmp_path, tiny_model, ray_address))
    outcome: dict[str, RunResult | BaseException] = {}

    def run() -> None:
        try:
            outcome["result"] = run_recipe(recipe)
        except BaseException as exc:  # handed to the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    run_dir = tmp_path / "run"
    wait_for_shards(run_dir / "shards" / "revisions", 1, thread.is_alive)
    workers = stage_workers()
    assert workers and not (run_dir / "revisions.parquet").exists()  # mid-stage
    os.kill(workers[0].pid, signal.SIGKILL)
    thread.join(timeout=240)
    assert not thread.is_alive() and "error" not in outcome, outcome.get("error")

    assert_same_rows(run_dir, local_run, tables=("responses", "revisions", "pairs"))
    shards = shard_rows(run_dir, "revisions")
    assert shards.height == pl.read_parquet(run_dir / "revisions.parquet").height  # no batch written twice


def test_a_driver_killed_mid_stage_resumes_from_its_shards(tmp_path, tiny_model, ray_address, local_run):
    path = write_recipe(tmp_path, tiny_model, **OPTIONS)
    command = [*CHARTER, "run", str(path), "--ray", ray_address]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_for_shards(tmp_path / "run" / "shards" / "revisions", 1, lambda: driver.poll() is None)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    assert not (tmp_path / "run" / "pairs.parquet").exists()

    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert_same_rows(tmp_path / "run", local_run, tables=("responses", "revisions", "pairs"))
    import json

    stages = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"]
    assert stages["responses"]["items_done_before"] == stages["responses"]["items"] == 12
    assert 0 < stages["revisions"]["items_done_before"] < 12


def test_execution_ray_without_ray_installed_says_how_to_install_it(tmp_path, tiny_model, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find_spec(name, *a))
    recipe = load_recipe(ray_recipe(tmp_path, tiny_model, "auto"))
    with pytest.raises(CharterError, match=r"pip install 'charter\[ray\]'"):
        run_recipe(recipe)
    assert not (tmp_path / "run").exists()  # refused before the run directory is touched


def test_unknown_execution_engines_and_bad_replicas_are_refused_by_name(tmp_path, tiny_model):
    with pytest.raises(CharterError, match="execution.engine.*unknown execution engine 'dask'"):
        load_recipe(write_recipe(tmp_path, tiny_model, execution={"engine": "dask"}))
    with pytest.raises(CharterError, match="replicas"):
        load_recipe(write_recipe(tmp_path, tiny_model, execution={"engine": "ray", "replicas": 0}))


@pytest.mark.parametrize("args, address", [(["--ray", "auto"], "auto"), (["--ray", "ray://head:10001"], "ray://head:10001"), ([], None)])
def test_charter_run_ray_flag_overrides_the_recipes_execution(tmp_path, tiny_model, monkeypatch, args, address):
    from typer.testing import CliRunner

    import training.pipeline
    from training.cli import app

    seen = []
    monkeypatch.setattr(training.pipeline, "run_and_train", lambda recipe, console: seen.append(recipe) or RunResult(tmp_path))
    path = write_recipe(tmp_path, tiny_model, execution={"replicas": 3})
    result = CliRunner().invoke(app, ["run", str(path), *args])
    assert result.exit_code == 0, result.output
    execution = seen[0].execution
    assert (execution.engine, execution.replicas) == ("ray" if address else "local", 3)
    assert execution.address == (address or "auto")
