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
