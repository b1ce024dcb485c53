"""The run directory: one Parquet table per stage, written in atomic shards, plus a manifest.

Layout:
    RUN/manifest.json                 recipe, constitution hash, versions, per-stage counts/timings
    RUN/<stage>.parquet               the stage's table (exactly the rows of the current plan)
    RUN/shards/<stage>/<id>.parquet   completed chunks; what resume reads

Every write is temp file + rename, so a kill at any moment leaves whole files or none. A shard's
rows carry `row_key` (hash of input row, stage config, constitution); a resumed stage skips keys
already in its shards, and a changed config simply produces new keys. Rows whose `error` column is
set (a request that failed, e.g. a served backend out of retries) are not written: they stay to do,
so the next run redoes them.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterable

import polars as pl
import pyarrow.parquet as pq

from engine.backends import UNAVAILABLE
from engine.errors import CharterError, disk_full, is_disk_full

KEY = "row_key"
LOCK = ".charter.lock"  # flock'ed by the process writing the run; holds its pid


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _umask()  # read once, at import: os.umask can only be read by setting it


def _atomic_replace(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        # mkstemp makes the file private (0600); the finished file gets the mode any new file gets (0644 under
        # umask 022), so a teammate can read a run directory, and a report meant to be shared opens for them.
        os.chmod(tmp, 0o666 & ~UMASK)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, Exception) and is_disk_full(exc):
            raise disk_full(path.parent) from None
        raise


def write_parquet_atomic(df: pl.DataFrame, path: Path) -> None:
    _atomic_replace(path, lambda tmp: df.write_parquet(tmp))


def write_text_atomic(text: str, path: Path) -> None:
    """Temp file + fsync + rename: a reader never sees half a file; a full disk is one clear error."""
    _atomic_replace(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_json_atomic(data: Any, path: Path) -> None:
    def write(tmp: str) -> None:
        Path(tmp).write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")

    _atomic_replace(path, write)


_HELD: dict[Path, list[int]] = {}  # run directories this process has locked -> [lock file descriptor, users]


def lock_run_dir(root: Path) -> None:
    """Take the run directory's exclusive lock (re-entrant within this process). The OS drops it when the
    process dies, kill -9 included, so no stale lock survives; a second writer gets one clear error."""
    key = root.resolve()
    if key in _HELD:
        _HELD[key][1] += 1
        return
    fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise CharterError(f"{root}: another charter process (pid {holder}) is writing this run directory; "
                           "wait for it to finish, or give this run another output_dir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD[key] = [fd, 1]


def unlock_run_dir(root: Path) -> None:
    """Give back one use of the lock; the last one releases it."""
    key = root.resolve()
    if key in _HELD:
        _HELD[key][1] -= 1
        if _HELD[key][1] == 0:
            os.close(_HELD.pop(key)[0])  # closing the descriptor drops the flock


class RunStore:
    """Reads and writes one run directory, holding its lock (one writer at a time)."""

    def __init__(self, root: str | Path, writer: bool = True):
        self.root, self.locked = Path(root), False
        self.damaged: dict[str, int] = {}  # unreadable files moved aside, per stage (or "manifest")
        if not writer:  # reading (charter show) needs no lock and must not tidy another writer's files
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CharterError(f"{self.root}: cannot create the run directory ({exc.strerror}); check output_dir") from None
        lock_run_dir(self.root)
        self.locked = True
        for leftover in self.root.rglob(".tmp-*"):  # from a run killed mid-write; ours only, as we hold the lock
            leftover.unlink(missing_ok=True)

    def close(self) -> None:
        """Release this store's hold on the run directory's lock."""
        if self.locked:
            unlock_run_dir(self.root)
            self.locked = False

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def shard_dir(self, stage: str) -> Path:
        return self.root / "shards" / stage

    def table_path(self, stage: str) -> Path:
        return self.root / f"{stage}.parquet"

    def _shards(self, stage: str) -> list[Path]:
        """The stage's readable shards. An unreadable one (cut short, overwritten) is moved aside into
        shards/<stage>/damaged/, kept for inspection, and counted: its rows are simply to do again."""
        folder = self.shard_dir(stage)
        shards = sorted(folder.glob("[!.]*.parquet")) if folder.is_dir() else []
        readable = []
        for shard in shards:
            try:
                pq.read_metadata(shard)
                readable.append(shard)
            except Exception:  # pyarrow raises several types for a damaged footer
                (folder / "damaged").mkdir(exist_ok=True)
                os.replace(shard, folder / "damaged" / shard.name)
                self.damaged[stage] = self.damaged.get(stage, 0) + 1
        return readable

    def shard_rows(self, stage: str) -> pl.LazyFrame | None:
        """Every readable shard of the stage as one lazy frame (None when there is none yet)."""
        shards = self._shards(stage)
        return pl.concat([pl.scan_parquet(s) for s in shards], how="diagonal_relaxed") if shards else None

    def done_keys(self, stage: str) -> set[str]:
        shards = self._shards(stage)
        if not shards:
            return set()
        return set(pl.scan_parquet(shards).select(KEY).unique().collect()[KEY].to_list())

    def write_shard(self, stage: str, rows: pl.DataFrame) -> int:
        """Store the rows as one shard; returns how many items failed (left to redo).

        A row whose `error` says the model was unavailable is not stored, so the next run redoes it.
        Any other error is that row's outcome (e.g. a context overflow): the row is stored with the
        error as its `skip_reason`, and later stages leave it out.
        """
        failed = pl.Series([], dtype=pl.String)
        if "error" in rows.columns:
            retry = pl.col("error").str.starts_with(UNAVAILABLE).fill_null(False)
            failed = rows.filter(retry)[KEY].unique()
            rows = rows.filter(~pl.col(KEY).is_in(failed.implode()))
            rows = rows.rename({"error": "skip_reason"})
        if rows.height:
            write_parquet_atomic(rows, self.shard_dir(stage) / f"{uuid.uuid4().hex}.parquet")
        return len(failed)

    def finalize(self, stage: str, keys: Iterable[str], id_column: str) -> pl.DataFrame:
        """Write `<stage>.parquet` with the shard rows of exactly these keys, in this key order."""
        order = pl.DataFrame({KEY: list(keys)}, schema={KEY: pl.String}).with_row_index("_order")
        shards = self._shards(stage)
        if shards:
            rows = pl.concat([pl.scan_parquet(s) for s in shards], how="diagonal_relaxed")
            table = (
                order.lazy()
                .join(rows, on=KEY, how="inner")
                .sort("_order", maintain_order=True)
                .drop("_order")
                .collect()
            )
            # Each output row once, even if two shards were to hold it.
            table = table.unique(subset=id_column, keep="first", maintain_order=True)
        else:
            table = pl.DataFrame({KEY: []}, schema={KEY: pl.String})
        write_parquet_atomic(table, self.table_path(stage))
        return table

    def read(self, stage: str) -> pl.DataFrame:
        path = self.table_path(stage)
        if not path.is_file():
            raise CharterError(f"{self.root}: no '{stage}' table yet; run the stages before it first")
        try:
            return pl.read_parquet(path)
        except Exception as exc:  # polars' ComputeError and friends: the file is cut short or not Parquet
            raise _unreadable(path, exc) from None

    def scan(self, stage: str) -> pl.LazyFrame:
        """The stage's table as a lazy scan, for passes that stream it instead of holding it (filter, export)."""
        return pl.scan_parquet(self.readable_table(stage))

    def readable_table(self, stage: str) -> Path:
        """The stage's table file, checked: a missing or cut-short file fails here, not halfway through a pass."""
        path = self.table_path(stage)
        if not path.is_file():
            raise CharterError(f"{self.root}: no '{stage}' table yet; run the stages before it first")
        try:
            pq.read_metadata(path)
        except Exception as exc:
            raise _unreadable(path, exc) from None
        return path

    def read_manifest(self, move_damaged: bool = False) -> dict[str, Any]:
        """The manifest ({} when there is none). A damaged one is an error naming it, or, with
        `move_damaged` (a run about to write a new one), moved aside to manifest.json.damaged."""
        path = self.root / "manifest.json"
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            if not move_damaged:
                raise CharterError(f"{path}: damaged manifest ({exc}); `charter run` the recipe again to rewrite it") from None
            os.replace(path, path.with_name("manifest.json.damaged"))
            self.damaged["manifest"] = 1
            return {}

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_json_atomic(manifest, self.root / "manifest.json")


def _unreadable(path: Path, exc: Exception) -> CharterError:
    return CharterError(f"{path}: unreadable Parquet file ({str(exc).splitlines()[0][:120]}); "
                        "run the recipe again to rebuild it from its shards")
