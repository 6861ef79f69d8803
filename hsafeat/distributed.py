"""Ray engine: the same featurizer, scaled out over a Ray cluster (optional extra `ray`).

`embed_dataset(ds)` maps any Ray Dataset that has a SMILES column through a pool of actors, each
holding one Embedder (one GPU each where asked), and appends the columns of the local path:
canonical_smiles, valid, error and the embeddings as fixed_size_list<float32>. It is the building
block for pipelines that read from and write to shared storage themselves:

    ds = ray.data.read_parquet("s3://bucket/molecules/")
    embed_dataset(ds, smiles_column="smiles").write_parquet("s3://bucket/embeddings/")

`embed_file_ray` is `hsafeat embed --engine ray`. The driver streams: it reads the input in chunks
with hsafeat's own reader (so rows, ids, comments, blank and invalid lines follow exactly the
local rules; Ray Data's text/CSV readers would number and split rows their own way), hands each
chunk to the least busy actor, keeps at most IN_FLIGHT_PER_ACTOR chunks per actor outstanding,
and writes the results in input order through the local engine's sink (atomic, resumable). Driver
memory is therefore bounded by the pool size, not the input size. Embeddings are byte-identical
to the local engine's, because a molecule's arithmetic never depends on its batch
(hsafeat.data.buckets)."""
from __future__ import annotations

import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from hsafeat.io import InputRow, InputSource
from hsafeat.output import ParquetSink

if TYPE_CHECKING:
    from hsafeat.engine import Embedder
    from hsafeat.pipeline import RunSummary

IN_FLIGHT_PER_ACTOR = 2  # one chunk being embedded, one waiting: the actor never idles on the driver


class ClusterError(Exception):
    """The cluster cannot run what was asked (no GPU for --device cuda, other weights on the actors)."""


def require_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ImportError("the Ray engine needs the optional extra: pip install 'hsafeat[ray]'") from None
    return ray


def actor_gpus(device: str, cluster_gpus: float) -> int:
    """GPUs each actor asks Ray for: `cuda` one, `auto` one when the cluster has any, `cpu` none."""
    if device == "cuda" and cluster_gpus <= 0:
        raise ClusterError("--device cuda was asked for but the Ray cluster has no GPU")
    return 1 if device == "cuda" or (device == "auto" and cluster_gpus > 0) else 0


class EmbedActor:
    """One encoder per actor, loaded once; `embed` serves the file engine, __call__ Ray Data."""

    def __init__(self, weights: str | None, device: str, batch_size: int, levels: list[str] | None,
                 smiles_column: str = "smiles", desc_units: str = "standard") -> None:
        from hsafeat.engine import Embedder

        self.embedder = Embedder(weights, device=device, batch_size=batch_size, desc_units=desc_units)
        self.levels = [k for k in self.embedder.dims if levels is None or k in levels]
        self.smiles_column = smiles_column

    def weights_sha256(self) -> str:
        return self.embedder.weights.sha256

    def embed(self, smiles: list[str]) -> dict[str, Any]:
        """The sink's columns after row_idx, id and smiles (embeddings as float32 matrices)."""
        result = self.embedder.embed(smiles)
        return {"canonical_smiles": result.canonical, "valid": result.valid, "error": result.errors,
                **{name: result.embeddings[name] for name in self.levels}}

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = self.embed([s if isinstance(s, str) else "" for s in batch.column(self.smiles_column).to_pylist()])
        invalid = pa.array(~rows["valid"])
        batch = batch.append_column("canonical_smiles", pa.array(rows["canonical_smiles"], pa.string()))
        batch = batch.append_column("valid", pa.array(rows["valid"]))
        batch = batch.append_column("error", pa.array(rows["error"], pa.string()))
        for name in self.levels:
            values = rows[name]
            column = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1], mask=invalid)
            batch = batch.append_column(name, column)
        return batch


def default_actors(resources: dict[str, float], num_gpus: float) -> int:
    """One actor per GPU where actors take GPUs, else one per CPU."""
    if num_gpus:
        return max(1, int(resources.get("GPU", 0) // num_gpus))
    return max(1, int(resources.get("CPU", 1)))


def embed_dataset(
    ds: Any, smiles_column: str = "smiles", weights: str | None = None, levels: list[str] | None = None,
    batch_size: int = 128, actors: int | None = None, num_gpus: float = 0, device: str = "auto",
) -> Any:
    """Append hsafeat's columns to a Ray Dataset (lazy, like every Ray Data transform).
    actors: pool size (default: one per CPU, or per GPU when num_gpus > 0)."""
    ray = require_ray()
    if actors is None:
        actors = default_actors(ray.cluster_resources(), num_gpus)
    return ds.map_batches(
        EmbedActor, batch_format="pyarrow", batch_size=4 * batch_size, concurrency=actors,
        num_cpus=0 if num_gpus else 1, num_gpus=num_gpus or None,
        fn_constructor_kwargs={"weights": weights, "device": "cuda" if num_gpus else device,
                               "batch_size": batch_size, "levels": levels, "smiles_column": smiles_column},
    )


def in_order(chunks: Iterator[list[InputRow]], pool: list[Any], per_actor: int = IN_FLIGHT_PER_ACTOR,
             ) -> Iterator[tuple[list[InputRow], dict[str, Any]]]:
    """Each chunk with its actor's result, in input order. A chunk is read only when fewer than
    per_actor x len(pool) are outstanding (submitted, not yet handed back), and goes to the actor
    with the fewest outstanding, so the driver holds a bounded number of chunks and results."""
    import ray

    pending: deque[tuple[list[InputRow], Any, int]] = deque()
    load = [0] * len(pool)
    limit = per_actor * len(pool)
    for chunk in chunks:
        actor = load.index(min(load))
        pending.append((chunk, pool[actor].embed.remote([r.smiles for r in chunk]), actor))
        load[actor] += 1
        if len(pending) >= limit:
            yield _next_result(pending, load, ray)
    while pending:
        yield _next_result(pending, load, ray)


def _next_result(pending: deque, load: list[int], ray: Any) -> tuple[list[InputRow], dict[str, Any]]:
    chunk, ref, actor = pending.popleft()
    result = ray.get(ref)
    load[actor] -= 1
    return chunk, result


def start_pool(ray: Any, embedder: Embedder, weights: str | None, device: str, batch_size: int,
               levels: list[str] | None, actors: int | None) -> tuple[list[Any], int]:
    """The actors (and the GPUs each took); refuses a pool whose weights differ from the driver's
    (e.g. another $HSAFEAT_WEIGHTS on the workers)."""
    resources = ray.cluster_resources()
    gpus = actor_gpus(device, resources.get("GPU", 0))
    n = actors or default_actors(resources, gpus)
    remote = ray.remote(EmbedActor).options(num_cpus=0 if gpus else 1, num_gpus=gpus)
    pool = [remote.remote(weights, "cuda" if gpus else "cpu", batch_size, levels, desc_units=embedder.desc_units)
            for _ in range(n)]
    found = set(ray.get([actor.weights_sha256.remote() for actor in pool]))
    if found != {embedder.weights.sha256}:
        for actor in pool:
            ray.kill(actor)
        raise ClusterError(f"the Ray actors loaded other weights (sha256 {', '.join(sorted(found))}) "
                           f"than the driver ({embedder.weights.sha256}); give --weights explicitly")
    return pool, gpus


def embed_file_ray(
    source: InputSource, output: Path, weights: str | None = None, levels: list[str] | None = None,
    layout: str = "list", batch_size: int = 128, actors: int | None = None, device: str = "auto",
    address: str | None = None, resume: bool = False, row_group_size: int = 8192, chunk_size: int = 1024,
    progress: Callable[[int, int], None] | None = None, embedder: Embedder | None = None,
) -> RunSummary:
    """`hsafeat embed --engine ray`: see the module docstring. embedder: the driver's copy of the
    weights (metadata, dims and the run key only), so a caller that has loaded it already (the CLI,
    to check --weights and --levels) does not load it twice; the actors load their own."""
    ray = require_ray()
    from hsafeat.engine import Embedder
    from hsafeat.pipeline import RunSummary, base_metadata, run_key

    embedder = embedder or Embedder(weights)
    dims = {k: v for k, v in embedder.dims.items() if levels is None or k in levels}
    start = time.perf_counter()
    if not ray.is_initialized():
        on_term = signal.getsignal(signal.SIGTERM)
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        # Ray installs a SIGTERM handler that exits at once (the sink then removed the finished row
        # groups, and a resume started over): keep the caller's (the CLI's ends the run as Ctrl-C does)
        if on_term is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, on_term)
    pool, gpus = start_pool(ray, embedder, weights, device, batch_size, levels, actors)
    meta = base_metadata(embedder, source, dims, layout, engine="ray", device="cuda" if gpus else "cpu")
    try:
        with ParquetSink(output, dims, meta, layout=layout, row_group_size=row_group_size,
                         run_key=run_key(source, embedder), resume=resume) as sink:
            resumed = n_rows = sink.rows_done
            n_valid = sink.valid_done
            for chunk, result in in_order(source.iter_chunks(chunk_size, skip=resumed), pool):
                sink.write({"row_idx": [r.row_idx for r in chunk], "id": [r.id for r in chunk],
                            "smiles": [r.smiles for r in chunk], **result})
                n_rows += len(chunk)
                n_valid += int(np.count_nonzero(result["valid"]))
                if progress:
                    progress(n_rows, n_valid)
            sink.close({"input_sha256": source.sha256(),
                        "rows": {"total": n_rows, "valid": n_valid, "invalid": n_rows - n_valid}})
    finally:
        for actor in pool:
            ray.kill(actor)
    return RunSummary(n_rows, n_valid, time.perf_counter() - start, output, resumed)
