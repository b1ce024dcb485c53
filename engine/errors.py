"""The one exception type charter raises for problems a user can fix, and the disk-full check."""

from __future__ import annotations

import errno
from pathlib import Path


class CharterError(Exception):
    """A user-fixable problem; the message names the file, row or field and says what to do.

    The CLI turns it into exit code 1 and prints only the message, no traceback.
    """


_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# How libraries that do their own IO say it (polars: "... underlying IO error: No space left on device (os error 28)").
_DISK_FULL_WORDS = ("no space left on device", "os error 28", "disk quota exceeded", "os error 122")


def is_disk_full(exc: BaseException) -> bool:
    """Whether an exception (or one it was raised from) says the disk or quota is full."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS:
            return True
        if any(words in str(exc).lower() for words in _DISK_FULL_WORDS):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def disk_full(where: str | Path) -> CharterError:
    return CharterError(f"no space left on device: {where}; free space and run again to resume")


def user_errors(fn):
    """Decorate a CLI command: a CharterError prints its message (no traceback) and exits with code 1."""
    import functools

    import typer
    from rich.console import Console

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CharterError as exc:
            Console(stderr=True).print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            where = Path(exc.filename).parent if isinstance(exc, OSError) and exc.filename else "the output folder"
            Console(stderr=True).print(f"[red]error:[/red] {disk_full(where)}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper
