"""Run directory: atomic shards, resume keys, finalize order and de-duplication."""

from __future__ import annotations

import polars as pl

from engine.store import KEY, RunStore


def rows(keys: list[str]) -> pl.DataFrame:
    return pl.DataFrame({KEY: keys, "pair_id": keys, "value": [len(k) for k in keys]})


def test_done_keys_are_the_keys_of_written_shards(tmp_path):
    store = RunStore(tmp_path)
    store.write_shard("pairs", rows(["a", "b"]))
    store.write_shard("pairs", rows(["c"]))
    assert store.done_keys("pairs") == {"a", "b", "c"}


def test_finalize_keeps_exactly_the_planned_keys_in_plan_order(tmp_path):
    store = RunStore(tmp_path)
    store.write_shard("pairs", rows(["a", "stale"]))
    store.write_shard("pairs", rows(["c", "b"]))
    table = store.finalize("pairs", ["c", "a", "b"], "pair_id")
    assert table[KEY].to_list() == ["c", "a", "b"]
    assert pl.read_parquet(tmp_path / "pairs.parquet")[KEY].to_list() == ["c", "a", "b"]


def test_finalize_drops_a_row_stored_twice(tmp_path):
    store = RunStore(tmp_path)
    store.write_shard("pairs", rows(["a", "b"]))
    store.write_shard("pairs", rows(["b"]))
    assert store.finalize("pairs", ["a", "b"], "pair_id")[KEY].to_list() == ["a", "b"]


def test_leftover_temp_files_from_a_killed_write_are_removed_and_ignored(tmp_path):
    store = RunStore(tmp_path)
    store.write_shard("pairs", rows(["a"]))
    (store.shard_dir("pairs") / ".tmp-x.parquet.123").write_bytes(b"PAR1 half written")
    reopened = RunStore(tmp_path)
    assert reopened.done_keys("pairs") == {"a"}
    assert not list(store.shard_dir("pairs").glob(".tmp-*"))


def test_manifest_round_trips(tmp_path):
    store = RunStore(tmp_path)
    store.write_manifest({"stages": {"pairs": {"rows": 3}}})
    assert store.read_manifest() == {"stages": {"pairs": {"rows": 3}}}


def hold_lock(run_dir):
    """Another process that opens the run directory for writing and keeps it."""
    import subprocess
    import sys

    code = f"from engine.store import RunStore; RunStore({str(run_dir)!r}); print('locked', flush=True); import time; time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_writer_is_refused_naming_the_directory_and_the_holder(tmp_path):
    import pytest

    from engine.errors import CharterError

    holder = hold_lock(tmp_path / "run")
    try:
        (tmp_path / "run" / ".tmp-prompts.parquet.x").write_text("the holder's file being written")
        with pytest.raises(CharterError, match=rf"run: another charter process \(pid {holder.pid}\)"):
            RunStore(tmp_path / "run")
        assert (tmp_path / "run" / ".tmp-prompts.parquet.x").exists()  # not tidied away under the holder
        RunStore(tmp_path / "run", writer=False)  # reading needs no lock
    finally:
        holder.kill()
        holder.wait()


def test_a_writer_killed_with_sigkill_leaves_no_stale_lock(tmp_path):
    holder = hold_lock(tmp_path / "run")
    holder.kill()  # SIGKILL
    holder.wait()
    store = RunStore(tmp_path / "run")
    import os

    assert (store.root / ".charter.lock").read_text().strip() == str(os.getpid())


def test_charter_run_into_a_directory_another_process_is_writing_exits_1_with_one_line(tmp_path, tiny_model):
    from typer.testing import CliRunner

    from conftest import write_recipe
    from training.cli import app

    recipe = write_recipe(tmp_path, tiny_model)
    holder = hold_lock(tmp_path / "run")
    try:
        result = CliRunner().invoke(app, ["run", str(recipe)])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert f"another charter process (pid {holder.pid})" in result.output
    finally:
        holder.kill()
        holder.wait()
    assert CliRunner().invoke(app, ["run", str(recipe)]).exit_code == 0  # the lock died with its holder


def test_atomically_written_files_get_the_usual_mode_not_mkstemps_private_one(tmp_path):
    import os
    import stat

    from engine.store import UMASK, write_json_atomic, write_parquet_atomic, write_text_atomic

    write_parquet_atomic(pl.DataFrame({"a": [1]}), tmp_path / "t.parquet")
    write_json_atomic({"a": 1}, tmp_path / "m.json")
    write_text_atomic("<p>hi</p>", tmp_path / "r.html")
    for name in ("t.parquet", "m.json", "r.html"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o666 & ~UMASK
