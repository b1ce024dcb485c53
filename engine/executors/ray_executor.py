"""The "ray" executor: a model stage's chunks streamed through Ray Data's `map_batches` over an actor pool.

Each actor (`StageWorker`) loads the stage's backend once (vLLM, transformers or a served one, with
`num_gpus` per actor) and turns one chunk of items into the stage's rows with the same `stage.run` the
local executor calls, so a Ray batch does exactly the work of a local chunk (all critique rounds of its
responses included). A chunk travels to the actor as one row of Arrow IPC bytes and its rows come back
as one: Ray can neither split nor merge it, so a chunk is the unit of work, of retry and of shard.

The driver writes each finished chunk as one shard (RunStore.write_shard: atomic, under the run lock).
Ray Data restarts a killed actor and runs its chunk again; the chunk's rows reach the driver once, so
nothing is lost or doubled, and a driver killed mid-stage resumes from its shards like a local run.
Workers never touch the run directory: they need charter installed and the model folder at the same
path. Ray is imported only here, and only when a stage has rows to do.
"""

from __future__ import annotations

import importlib.util
import io
import logging
from typing import TYPE_CHECKING, Any, Iterator

import polars as pl

from engine.backends import load_backend
from engine.errors import CharterError
from engine.executors.local import LocalExecutor

if TYPE_CHECKING:
    from engine.runner import LazyBackend
    from engine.stages import Stage

INSTALL = "pip install 'charter[ray]'"
CHUNK, ROWS, ITEMS = "chunk", "rows", "items"


def to_ipc(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_ipc(buffer)
    return buffer.getvalue()


def from_ipc(data: bytes) -> pl.DataFrame:
    return pl.read_ipc(io.BytesIO(data))


class StageWorker:
    """One Ray actor: the stage and its backend, loaded once; called with batches of serialized chunks."""

    def __init__(self, stage: Stage, kind: str, model_path: str, options: Any, seed: int):
        self.stage, self.backend = stage, load_backend(kind, model_path, options, seed)

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        rows, items = [], []
        for data in batch.column(CHUNK).to_pylist():
            chunk = from_ipc(data)
            rows.append(to_ipc(self.stage.run(chunk, self.backend)))
            items.append(chunk.height)
        return pa.table({ROWS: pa.array(rows, pa.large_binary()), ITEMS: pa.array(items, pa.int64())})


MAX_RESTARTS = 3  # per actor, and retries per batch, before the stage fails (its finished shards stay: re-run to resume)


class RayExecutor:
    name = "ray"

    def __init__(self, cfg: Any):
        if importlib.util.find_spec("ray") is None:
            raise CharterError(f"execution.engine: ray needs Ray, which is not installed; {INSTALL}")
        self.cfg, self.local, self._started = cfg, LocalExecutor(cfg), False

    def map_chunks(
        self, stage: Stage, todo: pl.DataFrame, backend: LazyBackend | None, chunk_size: int
    ) -> Iterator[tuple[int, pl.DataFrame]]:
        """Model stages go to the actor pool; a stage without a model (pairs) is cheap and stays here."""
        if backend is None or todo.height == 0:
            return self.local.map_chunks(stage, todo, backend, chunk_size)
        ray = self._connect()
        import pyarrow as pa

        size = self.cfg.batch_rows or chunk_size
        # One block per chunk, so the pool hands chunks to different actors.
        blocks = [pa.table({CHUNK: pa.array([to_ipc(chunk)], pa.large_binary())}) for chunk in todo.iter_slices(size)]
        done = ray.data.from_arrow(blocks).map_batches(
            StageWorker,
            fn_constructor_args=(stage, backend.kind, str(backend.model_path), backend.options, backend.seed),
            batch_size=1,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=self.cfg.replicas),
            num_gpus=self.cfg.gpus_per_replica or None,
            # Ray Data restarts actors and retries their batches forever by default: a worker that dies on every
            # batch (out of memory, a model folder missing on its node) would hang the run instead of failing it.
            max_restarts=MAX_RESTARTS,
            max_task_retries=MAX_RESTARTS,
        )
        return ((row[ITEMS], from_ipc(row[ROWS])) for row in done.iter_rows())

    def _connect(self) -> Any:
        """Join the cluster at `execution.address` (or start one for "local"), once per run."""
        import ray

        if not ray.is_initialized():
            address = self.cfg.address
            extra = {"include_dashboard": False} if address == "local" else {}
            try:
                ray.init(address=address, logging_level=logging.WARNING, **extra)
            except ConnectionError as exc:
                raise CharterError(
                    f"execution.address {address!r}: no Ray cluster found ({str(exc).splitlines()[0]}); start one with "
                    "`ray start --head` (then `ray start --address HEAD:6379` on each worker node), or use address: local "
                    "to start one in this process"
                ) from None
            self._started = True
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # not a line per dataset started and finished
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # the runner draws its own, per stage
        ctx.execution_options.preserve_order = False  # shards are a set: take chunks as they finish
        return ray

    def close(self) -> None:
        """Disconnect (and stop the cluster, if this run started it); a cluster someone else started stays up."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False
