"""Ray Data engine: the same featurizer, scaled out over a Ray cluster (optional extra `ray`).

`embed_dataset(ds)` maps any Ray Dataset that has a SMILES column through a pool of actors, each
holding one Embedder (one GPU each where asked), and appends the columns of the local path:
canonical_smiles, valid, error and the embeddings as fixed_size_list<float32>. It is the building
block for pipelines that read from and write to shared storage themselves:

    ds = ray.data.read_parquet("s3://bucket/molecules/")
    embed_dataset(ds, smiles_column="smiles").write_parquet("s3://bucket/embeddings/")

`embed_file_ray` is `hsafeat embed --engine ray`: the driver reads the input with hsafeat's own
reader (so rows, ids and invalid lines follow exactly the local rules), the actors embed, and the
driver writes the rows in input order through the same sink, so the file has the columns and
metadata of the local path. Embeddings are byte-identical to the local engine's, because a
molecule's arithmetic never depends on its batch (hsafeat.data.buckets)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from hsafeat.io import InputSource
from hsafeat.output import ParquetSink

ROW_COLUMNS = ("row_idx", "id", "smiles")


def require_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ImportError("the Ray engine needs the optional extra: pip install 'hsafeat[ray]'") from None
    return ray


class EmbedActor:
    """One encoder per actor, loaded once; __call__ embeds one Arrow batch."""

    def __init__(self, weights: str | None, device: str, batch_size: int, levels: list[str] | None,
                 smiles_column: str) -> None:
        from hsafeat.engine import Embedder

        self.embedder = Embedder(weights, device=device, batch_size=batch_size)
        self.levels = [k for k in self.embedder.dims if levels is None or k in levels]
        self.smiles_column = smiles_column

    def __call__(self, batch: pa.Table) -> pa.Table:
        smiles = [s if isinstance(s, str) else "" for s in batch.column(self.smiles_column).to_pylist()]
        result = self.embedder.embed(smiles)
        invalid = pa.array(~result.valid)
        batch = batch.append_column("canonical_smiles", pa.array(result.canonical, pa.string()))
        batch = batch.append_column("valid", pa.array(result.valid))
        batch = batch.append_column("error", pa.array(result.errors, pa.string()))
        for name in self.levels:
            values = result.embeddings[name]
            column = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1], mask=invalid)
            batch = batch.append_column(name, column)
        return batch


def embed_dataset(
    ds: Any, smiles_column: str = "smiles", weights: str | None = None, levels: list[str] | None = None,
    batch_size: int = 128, actors: int | None = None, num_gpus: float = 0, device: str = "auto",
) -> Any:
    """Append hsafeat's columns to a Ray Dataset (lazy, like every Ray Data transform).
    actors: pool size (default: one per CPU, or per GPU when num_gpus > 0)."""
    ray = require_ray()
    if actors is None:
        resources = ray.cluster_resources()
        actors = max(1, int(resources.get("GPU", 0) // num_gpus) if num_gpus else int(resources.get("CPU", 1)))
    return ds.map_batches(
        EmbedActor, batch_format="pyarrow", batch_size=4 * batch_size, concurrency=actors,
        num_cpus=0 if num_gpus else 1, num_gpus=num_gpus or None,
        fn_constructor_kwargs={"weights": weights, "device": "cuda" if num_gpus else device,
                               "batch_size": batch_size, "levels": levels, "smiles_column": smiles_column},
    )


def _rows(table: pa.Table, dims: dict[str, int]) -> dict[str, Any]:
    """An embedded Arrow batch -> the sink's row dict (embeddings as float32 matrices)."""
    rows: dict[str, Any] = {k: table.column(k).to_pylist() for k in (*ROW_COLUMNS, "canonical_smiles", "error")}
    rows["valid"] = table.column("valid").to_numpy(zero_copy_only=False)
    for name, d in dims.items():
        column = table.column(name).combine_chunks()
        rows[name] = column.values.to_numpy(zero_copy_only=False).reshape(len(table), d)
    return rows


def embed_file_ray(
    source: InputSource, output: Path, weights: str | None, levels: list[str] | None = None, layout: str = "list",
    batch_size: int = 128, actors: int | None = None, num_gpus: float = 0, address: str | None = None,
    resume: bool = False, row_group_size: int = 8192, chunk_size: int = 1024, progress: Any = None,
):  # noqa: ANN201 - returns pipeline.RunSummary
    """`hsafeat embed --engine ray`: see the module docstring."""
    ray = require_ray()
    from hsafeat.engine import Embedder
    from hsafeat.pipeline import RunSummary, base_metadata, run_key

    embedder = Embedder(weights)  # on the driver: metadata, dims and the run key only
    dims = {k: v for k, v in embedder.dims.items() if levels is None or k in levels}
    meta = base_metadata(embedder, source, dims, layout, engine="ray", device="cuda" if num_gpus else "cpu")
    start = time.perf_counter()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True   # rows come back in input order
    context.enable_progress_bars = False
    with ParquetSink(output, dims, meta, layout=layout, row_group_size=row_group_size,
                     run_key=run_key(source, embedder), resume=resume) as sink:
        resumed = n_rows = sink.rows_done
        n_valid = sink.valid_done
        tables = [
            pa.table({"row_idx": [r.row_idx for r in chunk], "id": [r.id for r in chunk],
                      "smiles": [r.smiles for r in chunk]})
            for chunk in source.iter_chunks(chunk_size, skip=resumed)
        ]
        if tables:
            ds = embed_dataset(ray.data.from_arrow(tables), "smiles", weights, levels, batch_size, actors, num_gpus)
            for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
                sink.write(_rows(batch, dims))
                n_rows += len(batch)
                n_valid += int(np.count_nonzero(batch.column("valid").to_numpy(zero_copy_only=False)))
                if progress:
                    progress(n_rows, n_valid)
        sink.close({"input_sha256": source.sha256(),
                    "rows": {"total": n_rows, "valid": n_valid, "invalid": n_rows - n_valid}})
    return RunSummary(n_rows, n_valid, time.perf_counter() - start, output, resumed)
