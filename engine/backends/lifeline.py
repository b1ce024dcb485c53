"""Child processes that die with charter, so that a kill -9 never leaves a model engine running.

vLLM runs its engine in a child process (VLLM::EngineCore, which may start VLLM::Worker processes) that
waits on a socket for work, holding the weights and the KV cache. A charter process killed with SIGKILL
runs no clean-up; without this the engine, its workers and multiprocessing's resource tracker would live
on, re-parented to init, for good.

Linux can signal a process when its parent ends (prctl PR_SET_PDEATHSIG), but a process must ask for it
itself, so every child started after `children_die_with_this_process()` asks for SIGKILL first thing:
- children started by fork ask in an `os.register_at_fork` hook;
- children started by spawn (vLLM's choice on CPU, and on GPU once CUDA is up) run a launcher script,
  set as multiprocessing's executable, which asks, then execs the real Python with the same arguments;
  a multiprocessing child started this way ties its own children the same way.
The signal follows the *thread* that started the child; charter starts engines from its main thread.
Elsewhere than Linux this does nothing.
"""

from __future__ import annotations

import ctypes
import hashlib
import multiprocessing
import os
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1  # linux/prctl.h
SIGKILL = 9

_LAUNCHER = '''#!{python}
# Written by charter (engine/backends/lifeline.py): run Python as a child that dies with its parent.
import ctypes, os, sys

parent = os.getppid()
ctypes.CDLL(None, use_errno=True).prctl({option}, {signal})
if os.getppid() != parent:  # the parent died before the request took effect
    sys.exit(1)
args = sys.argv[1:]
if "-c" in args:  # a multiprocessing child: tie its own children too
    i = args.index("-c") + 1
    args[i] = {tie!r} + args[i]
os.execv(sys.executable, [sys.executable] + args)
'''
_TIE = """try:
    from engine.backends.lifeline import children_die_with_this_process
    children_die_with_this_process()
except ImportError:
    pass
"""

_forking_pid: list[int] = []  # [pid of the process about to fork], set before each fork, read in the child
_tied = False


def children_die_with_this_process() -> None:
    """From now on, every child this process starts (by fork or by spawn) gets SIGKILL when it ends."""
    global _tied
    if _tied or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        launcher = _launcher()
    except OSError:  # no libc to call, or nowhere to write the launcher: leave children as they are
        return

    def before_fork() -> None:
        _forking_pid[:] = [os.getpid()]

    def in_child() -> None:
        libc.prctl(PR_SET_PDEATHSIG, SIGKILL)
        if _forking_pid and os.getppid() != _forking_pid[0]:  # the parent died before prctl took effect
            os._exit(1)

    os.register_at_fork(before=before_fork, after_in_child=in_child)
    multiprocessing.set_executable(str(launcher))
    _tied = True


def _launcher() -> Path:
    """The launcher for this Python, in charter's cache; written once (atomically), then reused."""
    from engine.models import cache_dir

    text = _LAUNCHER.format(python=sys.executable, option=PR_SET_PDEATHSIG, signal=SIGKILL, tie=_TIE)
    path = cache_dir() / "launchers" / f"python-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(text)
        tmp.chmod(0o755)
        os.replace(tmp, path)
    return path
