"""Streaming jobs behind the CLI: input file -> chunks -> Embedder -> Parquet, in constant memory.
The output appears at its destination only when complete."""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

import hsafeat
from hsafeat.engine import Embedded, Embedder
from hsafeat.hashing import sha256_file
from hsafeat.io import InputError, InputRow, InputSource
from hsafeat.nn.readout import READOUT_KINDS
from hsafeat.output import ParquetSink
from hsafeat.output_paths import check_destinations
from hsafeat.workers import embedded_chunks, featurized_chunks, share_cores, torch_threads_restored

SCHEMA_VERSION = "hsafeat-embeddings-1"
GATES_SCHEMA_VERSION = "hsafeat-gates-1"
Progress = Callable[[int, int], None]  # (rows done, valid rows done)


@dataclass
class RunSummary:
    n_rows: int
    n_valid: int
    seconds: float
    output: Path
    resumed_rows: int = 0  # rows a resumed run found already done (not counted in the rate)

    @property
    def n_invalid(self) -> int:
        return self.n_rows - self.n_valid

    @property
    def rate(self) -> float:
        return (self.n_rows - self.resumed_rows) / self.seconds if self.seconds > 0 else float("nan")

    def line(self) -> str:
        resumed = f" (resumed after {self.resumed_rows})" if self.resumed_rows else ""
        return (f"{self.n_rows} molecules{resumed}, {self.n_valid} valid, {self.n_invalid} invalid, "
                f"{self.rate:.0f} mol/s -> {self.output}")


def base_metadata(embedder: Embedder, source: InputSource, dims: dict[str, int], layout: str,
                  engine: str = "local", device: str | None = None) -> dict:
    import rdkit
    import torch

    w = embedder.weights
    return {
        "hsafeat": hsafeat.__version__, "schema": SCHEMA_VERSION, "rdkit": rdkit.__version__,
        "torch": torch.__version__, "weights": {"name": w.name, "sha256": w.sha256},
        "columns": dims, "recommended_column": w.recommended_column,
        "layout": layout, "dtype": "float32", "engine": engine, "device": device or str(embedder.device),
        "pooling": {"fused": "concat(mean, max) over the 28 SAF tokens",
                    "level_i": "mean of level i's 4 tokens after SAF", "motif": "mean of the 4 motif tokens after SAF",
                    "pooled": "concat(fused, each GNN level's node states summed over the atoms / 32)",
                    **({"desc_pred": READOUT_KINDS[w.config.readout_kind]} if "desc_pred" in dims else {})},
        **({"desc_pred_names": list(w.config.readout_descriptors), "desc_pred_units": embedder.desc_units}
           if "desc_pred" in dims else {}),
        "max_atoms": w.max_atoms, "input": source.name,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _chunk_rows(chunk: list[InputRow], result: Embedded) -> dict:
    return {
        "row_idx": [r.row_idx for r in chunk], "id": [r.id for r in chunk], "smiles": [r.smiles for r in chunk],
        "canonical_smiles": result.canonical, "valid": result.valid, "error": result.errors,
    }


def _featurized(source: InputSource, embedder: Embedder, chunk_size: int, workers: int, skip: int = 0):  # noqa: ANN202
    w = embedder.weights
    share_cores(workers, embedder.device.type)
    return featurized_chunks(source.iter_chunks(chunk_size, skip), embedder.vocab, w.max_atoms, workers,
                             w.config.token_len)


def _embedded(source: InputSource, embedder: Embedder, chunk_size: int, workers: int, encode_in_workers: bool,
              skip: int = 0) -> Iterator[tuple[list[InputRow], Embedded]]:
    """The input's chunks with their results: encoded here (workers featurize ahead), or, with
    encode_in_workers, featurized and encoded in the workers (hsafeat.workers)."""
    if encode_in_workers:
        if embedder.device.type != "cpu":
            raise ValueError("encode_in_workers runs the encoder on CPU workers; the GPU encoder runs in the main process")
        yield from embedded_chunks(source.iter_chunks(chunk_size, skip), embedder, workers)
        return
    with contextlib.closing(_featurized(source, embedder, chunk_size, workers, skip)) as featurized:
        for chunk, feats in featurized:
            yield chunk, embedder.embed_featurized(feats)


def run_key(source: InputSource, embedder: Embedder) -> dict | None:
    """What a resumed run must share with the interrupted one (None for stdin or a pipe: not resumable)."""
    if source.streamed:
        return None
    try:
        digest = sha256_file(Path(source.path))
    except OSError as exc:
        raise InputError(f"cannot read {source.name}: {exc.strerror or exc}") from None
    return {"schema": SCHEMA_VERSION, "hsafeat": hsafeat.__version__, "input_sha256": digest,
            "smiles_column": source.smiles_column, "id_column": source.id_column,
            "weights_sha256": embedder.weights.sha256, "desc_units": embedder.desc_units}


def embed_file(
    source: InputSource, output: Path, embedder: Embedder, levels: list[str] | None = None, layout: str = "list",
    chunk_size: int = 1024, progress: Progress | None = None, workers: int = 0, resume: bool = False,
    row_group_size: int = 8192, encode_in_workers: bool = False, desc_units: str | None = None,
    overwrite: bool = False,
) -> RunSummary:
    """Embed `source` into `output`. resume=True continues an interrupted run of the same input,
    weights and options from its last complete row group (see hsafeat.output). encode_in_workers:
    `workers` processes (at least one) featurize and encode; the output is the same. desc_units:
    "standard" or "real" for desc_pred (hsafeat.engine.Embedder; default: the embedder's own).
    Like the CLI, it never writes over its input, and replaces an existing output only with
    overwrite=True (or continues its unfinished run with resume=True): DestinationError otherwise,
    before any work."""
    output = Path(output)
    check_destinations(source.path, {"output": output}, overwrite, resume, overwrite_hint="pass overwrite=True")
    if desc_units is not None:
        embedder = embedder.with_desc_units(desc_units)
    dims = {k: v for k, v in embedder.dims.items() if levels is None or k in levels}
    if resume and source.streamed:
        raise InputError(f"--resume needs an input file; {source.name} cannot be read again")
    start = time.perf_counter()
    key = run_key(source, embedder)
    with torch_threads_restored(), ParquetSink(  # the run sets torch's threads (share_cores); the caller keeps theirs
            output, dims, base_metadata(embedder, source, dims, layout), layout=layout,
            row_group_size=row_group_size, run_key=key, resume=resume) as sink:
        resumed = n_rows = sink.rows_done
        n_valid = sink.valid_done
        # closed as soon as the loop is left (Ctrl-C): the workers stop then, not when Python exits
        with contextlib.closing(_embedded(source, embedder, chunk_size, workers, encode_in_workers,
                                          skip=resumed)) as results:
            for chunk, result in results:
                rows = _chunk_rows(chunk, result)
                rows.update({name: result.embeddings[name] for name in dims})
                sink.write(rows)
                n_rows += len(chunk)
                n_valid += int(result.valid.sum())
                if progress:
                    progress(n_rows, n_valid)
        sink.close({"input_sha256": source.sha256(), "rows": {"total": n_rows, "valid": n_valid, "invalid": n_rows - n_valid}})
    return RunSummary(n_rows, n_valid, time.perf_counter() - start, output, resumed)


def gate_source_names(n_levels: int) -> list[str]:
    return [f"level_{i}" for i in range(n_levels)] + ["motif"]


def gates_schema(n_experts: int) -> pa.Schema:
    return pa.schema([
        ("row_idx", pa.int64()), ("id", pa.string()), ("valid", pa.bool_()), ("error", pa.string()),
        ("source", pa.string()), ("p_attention", pa.float32()), ("p_mamba", pa.float32()), ("projector", pa.string()),
        ("expert_weights", pa.list_(pa.float32(), n_experts)),
    ])


def _gate_rows(chunk: list[InputRow], r: Embedded, sources: list[str], schema: pa.Schema) -> pa.Table:
    """One chunk in long format: a row per (input row, source); the motif source has no gate."""
    n, s, n_experts = len(chunk), len(sources), r.expert_weights.shape[-1]
    p = np.concatenate([r.gate_probs, np.full((n, 1, 2), np.nan, np.float32)], axis=1)  # n x S x 2
    chosen = np.where(p[..., 1] > p[..., 0], "mamba", "attention").astype(object)
    chosen[np.isnan(p[..., 0])] = None
    return pa.table({
        "row_idx": np.repeat([row.row_idx for row in chunk], s),
        "id": np.repeat(np.asarray([row.id for row in chunk], dtype=object), s),
        "valid": np.repeat(r.valid, s), "error": np.repeat(np.asarray(r.errors, dtype=object), s),
        "source": np.tile(sources, n),
        "p_attention": pa.array(p[..., 0].reshape(-1), from_pandas=True),
        "p_mamba": pa.array(p[..., 1].reshape(-1), from_pandas=True),
        "projector": chosen.reshape(-1),
        "expert_weights": pa.FixedSizeListArray.from_arrays(
            pa.array(np.nan_to_num(r.expert_weights.reshape(-1))), n_experts, mask=pa.array(np.repeat(~r.valid, s))),
    }, schema=schema)


def inspect_gates(
    source: InputSource, output: Path | None, embedder: Embedder, chunk_size: int = 1024,
    progress: Progress | None = None, workers: int = 0, overwrite: bool = False,
) -> tuple[RunSummary, dict]:
    """Long format, one row per (input row, source): gate probabilities and chosen projector for
    levels (null for motif), mean SAF expert weights for every source; written through the same
    atomic sink as embeddings (hsafeat.output). Returns the summary and the aggregate statistics
    (per-level Graph-Mamba share, expert usage per source). The output follows embed_file's rules:
    never the input, an existing file replaced only with overwrite=True."""
    if output is not None:
        output = Path(output)
        check_destinations(source.path, {"output": output}, overwrite, overwrite_hint="pass overwrite=True")
    c = embedder.weights.config
    sources = gate_source_names(c.n_levels)
    start = time.perf_counter()
    n_rows = n_valid = 0
    mamba_count = np.zeros(c.n_levels)
    expert_sum = np.zeros((c.n_sources, c.n_experts))
    schema = gates_schema(c.n_experts)
    meta = {"schema": GATES_SCHEMA_VERSION, "hsafeat": hsafeat.__version__,
            "weights": {"name": embedder.weights.name, "sha256": embedder.weights.sha256}, "input": source.name}
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch_threads_restored())  # the run sets torch's threads (share_cores); the caller keeps theirs
        sink = stack.enter_context(ParquetSink(output, {}, meta, schema=schema)) if output is not None else None
        for chunk, feats in stack.enter_context(contextlib.closing(_featurized(source, embedder, chunk_size, workers))):
            r = embedder.embed_featurized(feats)
            n_rows += len(chunk)
            n_valid += int(r.valid.sum())
            ok = r.valid
            mamba_count += (r.gate_probs[ok, :, 1] > r.gate_probs[ok, :, 0]).sum(0)
            expert_sum += r.expert_weights[ok].sum(0)
            if sink is not None:
                sink.write_table(_gate_rows(chunk, r, sources, schema))
            if progress:
                progress(n_rows, n_valid)
        if sink is not None:
            sink.close({"rows": {"total": n_rows, "valid": n_valid, "invalid": n_rows - n_valid}})
    denominator = n_valid if n_valid else float("nan")  # no valid molecule: no shares to report
    stats = {
        "n_valid": n_valid,
        "mamba_share": (mamba_count / denominator).tolist(),
        "expert_usage": (expert_sum / denominator).tolist(),
        "sources": sources,
    }
    return RunSummary(n_rows, n_valid, time.perf_counter() - start, output or Path("-")), stats
