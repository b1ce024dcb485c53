"""A disk that fills up during a run: one line saying so and where, nothing damaged, and the next run resumes."""

from __future__ import annotations

import errno
import subprocess

import polars as pl
import pytest
from typer.testing import CliRunner

from conftest import write_recipe
from engine.errors import CharterError, is_disk_full
from engine.store import write_parquet_atomic
from training.cli import app


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs (needs root, as on the machines charter's CI runs on)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up (needs root): {made.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk, leave_bytes: int):
    """Fill the disk up to `leave_bytes` of free space with one file; returns it (delete it to free space)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    filler.write_bytes(b"\0" * (filler.stat().st_size - leave_bytes))
    return filler


def test_a_full_disk_under_a_parquet_write_is_one_error_naming_the_folder(small_disk):
    fill(small_disk, leave_bytes=0)
    big = pl.DataFrame({"text": ["x" * 1000] * 2000})
    with pytest.raises(CharterError, match=rf"no space left on device: {small_disk}/run; free space and run again"):
        write_parquet_atomic(big, small_disk / "run" / "table.parquet")
    assert list((small_disk / "run").iterdir()) == []  # the temporary file went too


def test_disk_full_is_recognised_through_library_wrappers():
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(pl.exceptions.ComputeError("parquet: underlying IO error: No space left on device (os error 28)"))
    assert not is_disk_full(OSError(errno.ENOENT, "No such file or directory"))


def test_a_run_that_fills_the_disk_stops_with_one_line_and_resumes_once_there_is_space(small_disk, tiny_model):
    recipe = write_recipe(small_disk, tiny_model, output_dir=str(small_disk / "run"),
                          judge={"principles": 1}, filter={}, export={})
    filler = fill(small_disk, leave_bytes=60_000)  # enough to start, not to finish (the export alone is larger)
    full = CliRunner().invoke(app, ["run", str(recipe)])
    assert full.exit_code == 1 and full.exception is None or isinstance(full.exception, SystemExit)
    assert "no space left on device: " in full.output and "free space and run again to resume" in full.output
    assert "Traceback" not in full.output
    filler.unlink()
    resumed = CliRunner().invoke(app, ["run", str(recipe)])
    assert resumed.exit_code == 0, resumed.output
    assert (small_disk / "run" / "export" / "dataset").is_dir()
    assert pl.read_parquet(small_disk / "run" / "judged.parquet").height == 6
