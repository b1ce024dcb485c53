"""The "local" executor: a stage's chunks one after another in this process, on the engine loaded here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

import polars as pl

if TYPE_CHECKING:
    from engine.runner import LazyBackend
    from engine.stages import Stage


class LocalExecutor:
    name = "local"

    def __init__(self, cfg: Any = None):
        self.cfg = cfg

    def map_chunks(
        self, stage: Stage, todo: pl.DataFrame, backend: LazyBackend | None, chunk_size: int
    ) -> Iterator[tuple[int, pl.DataFrame]]:
        """Loads the engine now, before the first chunk is asked for: the runner's clock starts after loading."""
        engine_ = backend.get() if backend is not None and todo.height else None
        return ((chunk.height, stage.run(chunk, engine_)) for chunk in todo.iter_slices(chunk_size))

    def close(self) -> None:
        """Nothing to give back: the run closes its engines (RunResult.close)."""
