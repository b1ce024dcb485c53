"""A run killed with SIGKILL mid-stage and restarted ends with the same rows as an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

from conftest import write_recipe

CHARTER = [sys.executable, "-m", "training.cli"]  # the `charter` entry point


def start(recipe: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([*CHARTER, "run", str(recipe)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


def kill_when_shards_appear(proc: subprocess.Popen, shard_dir: Path, at_least: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(list(shard_dir.glob("*.parquet"))) >= at_least:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return
        assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("no shard appeared in time")


def ids(run_dir: Path, table: str, column: str) -> list[str]:
    return sorted(pl.read_parquet(run_dir / f"{table}.parquet")[column].to_list())


def test_sigkill_mid_stage_then_restart_matches_an_uninterrupted_run(tmp_path, tiny_model):
    options = dict(
        chunk_size=2,
        prompts={"path": str(Path(__file__).parents[1] / "data" / "prompts" / "helpful.jsonl"), "limit": 16},
        respond={"n": 1, "sampling": {"temperature": 0.0, "max_tokens": 24}},
        critique={"rounds": 1, "sampling": {"temperature": 0.0, "max_tokens": 24}},
    )
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    reference_dir.mkdir(), killed_dir.mkdir()
    reference = write_recipe(reference_dir, tiny_model, **options)
    killed = write_recipe(killed_dir, tiny_model, **options)

    assert subprocess.run([*CHARTER, "run", str(reference)], capture_output=True).returncode == 0

    # Kill once while responses are being written, once in the middle of critique.
    proc = start(killed)
    kill_when_shards_appear(proc, killed_dir / "run" / "shards" / "responses", at_least=2)
    assert proc.returncode == -signal.SIGKILL
    proc = start(killed)
    kill_when_shards_appear(proc, killed_dir / "run" / "shards" / "revisions", at_least=2)
    assert proc.returncode == -signal.SIGKILL
    assert not (killed_dir / "run" / "pairs.parquet").exists()

    finished = subprocess.run([*CHARTER, "run", str(killed)], capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-2000:]

    ref_run, run = reference_dir / "run", killed_dir / "run"
    for table, column in [("responses", "response_id"), ("revisions", "revision_id"), ("pairs", "pair_id")]:
        got = ids(run, table, column)
        assert got == ids(ref_run, table, column), table
        assert len(got) == len(set(got)), f"duplicates in {table}"
    # Greedy decoding on the same model: the text is the same too.
    assert pl.read_parquet(run / "pairs.parquet").sort("pair_id").select("response_a", "response_b").equals(
        pl.read_parquet(ref_run / "pairs.parquet").sort("pair_id").select("response_a", "response_b")
    )
    leftovers = [p for p in run.rglob("*") if p.name.startswith(".tmp-")]
    assert leftovers == []
    for shard in run.rglob("shards/*/*.parquet"):
        assert pl.read_parquet(shard).height > 0


def test_damaged_files_in_a_run_directory_are_named_or_set_aside_and_recomputed(tmp_path, tiny_model):
    from typer.testing import CliRunner

    from engine.config import load_recipe
    from engine.runner import run_recipe
    from training.cli import app

    recipe = load_recipe(write_recipe(tmp_path, tiny_model, judge={"principles": 1}, chunk_size=2))
    first = run_recipe(recipe)
    run_dir = first.run_dir
    before = pl.read_parquet(run_dir / "judged.parquet").sort("pair_id")
    shard = sorted((run_dir / "shards" / "judged").glob("*.parquet"))[0]
    shard.write_bytes(shard.read_bytes()[:100])  # cut short, as a full disk or a bad copy leaves it
    (run_dir / "manifest.json").write_text('{"recipe": ')
    again = run_recipe(recipe)
    assert (run_dir / "shards" / "judged" / "damaged" / shard.name).is_file()  # kept, not deleted
    assert (run_dir / "manifest.json.damaged").is_file()
    assert 0 < again.stages["judged"].items - again.stages["judged"].items_done_before <= 2
    after = pl.read_parquet(run_dir / "judged.parquet").sort("pair_id")
    assert after["pair_id"].to_list() == before["pair_id"].to_list()
    assert after["p_a"].to_list() == before["p_a"].to_list()

    (run_dir / "judged.parquet").write_bytes(b"not parquet")
    result = CliRunner().invoke(app, ["filter", str(run_dir)])
    assert result.exit_code == 1 and "judged.parquet: unreadable Parquet file" in result.output
    assert "Traceback" not in result.output
