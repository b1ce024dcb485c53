"""Executors: where a stage's chunks run. "local" runs them one after another in this process (the
default); "ray" streams them through an actor pool on a Ray cluster (ray_executor.py).

An executor has one job, `map_chunks(stage, todo, backend, chunk_size)`: yield (items, rows) for each
finished chunk, the number of items it covered and the stage's output rows for them. The runner writes
each as one shard, so the run directory, its lock and resume stay the runner's and the store's: an
executor never writes. A new executor is one file plus one `register_executor` line below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Protocol

from engine.registry import Registry

if TYPE_CHECKING:  # the runner imports this package; the types only point back
    import polars as pl

    from engine.runner import LazyBackend
    from engine.stages import Stage


class Executor(Protocol):
    """Built as `cls(execution_config)`; connects to nothing until a stage has rows to do."""

    name: str

    def map_chunks(
        self, stage: Stage, todo: pl.DataFrame, backend: LazyBackend | None, chunk_size: int
    ) -> Iterator[tuple[int, pl.DataFrame]]:
        """(items covered, output rows) per finished chunk, in any order; every item of `todo` exactly once."""
        ...

    def close(self) -> None:
        """Give back what the executor started (a Ray connection or local cluster)."""
        ...


EXECUTORS = Registry("execution engine")


def register_executor(name: str, target: str | type) -> None:
    EXECUTORS.register(name, target)


def executor_names() -> tuple[str, ...]:
    return EXECUTORS.names()


def executor_for(cfg: Any) -> Executor:
    """The executor a recipe's `execution:` section (engine.config.ExecutionConfig) names."""
    return EXECUTORS.get(cfg.engine)(cfg)


register_executor("local", "engine.executors.local:LocalExecutor")
register_executor("ray", "engine.executors.ray_executor:RayExecutor")
