"""Featurization in worker processes, overlapped with inference in the main process.

RDKit parsing and graph building are pure Python + C++ and hold the GIL, so threads would
serialise them with torch; processes don't. Chunks are submitted a bounded distance ahead of
the encoder (memory stays constant) and come back in input order.

Workers come from a fork server that imported only hsafeat.chem (RDKit, numpy), never torch: a
worker forked from the main process carried torch's pages (peak RSS 223 MiB, 355-370 MiB while
torch-geometric was imported) against 93 MiB this way beside an ~80 MiB server (session 8), and
forking after torch has started its thread pools is unsafe. `prestart` launches the server while
the main process is still importing torch. Like any spawn-style start, each worker imports the
caller's main module again: a script that embeds with workers through the Python API needs the
usual `if __name__ == "__main__":` guard.

`embedded_chunks` is the other schedule (`hsafeat embed --encode-in-workers`): every worker
featurizes *and* encodes its chunks on one torch thread, and the main process only writes. One
process per core scales with the cores (two encoder processes on this 2-core VM each run at their
solo speed, while a second torch thread in one process adds ~1.1-1.5x) and needs no balance
between the stages, but every worker holds torch, the weights and an encoder's heap: on 2 cores
1.06-1.14x the default's speed at ~1.9x its memory (BENCHMARKS.md, "Session 10"), so it is opt-in."""
from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing.context import BaseContext
from typing import TYPE_CHECKING, TypeVar

from hsafeat.chem.featurize import Featurized, featurize

if TYPE_CHECKING:  # the workers import this module: keep pyarrow (and torch, for featurizing workers) out
    from hsafeat.engine import Embedded, Embedder
    from hsafeat.io import InputRow

T = TypeVar("T")
_VOCAB: dict[str, int] = {}
_MAX_ATOMS = 0
_PRELOAD = ["hsafeat.workers"]  # and through it hsafeat.chem: what every worker runs


def _init(vocab: dict[str, int], max_atoms: int) -> None:
    global _VOCAB, _MAX_ATOMS
    _VOCAB, _MAX_ATOMS = vocab, max_atoms


def _featurize(smiles: list[str]) -> Featurized:
    return featurize(smiles, _VOCAB, _MAX_ATOMS)


_EMBEDDER: Embedder | None = None


def _init_encoder(weights_dir: str, sha256: str, batch_size: int, desc_units: str = "standard") -> None:
    global _EMBEDDER
    import torch

    from hsafeat.engine import Embedder

    torch.set_num_threads(1)  # one process per core: threads would only contend
    _EMBEDDER = Embedder(weights_dir, "cpu", batch_size, desc_units)
    if _EMBEDDER.weights.sha256 != sha256:
        raise RuntimeError(f"the weights in {weights_dir} changed while the run started")


def _embed(smiles: list[str]) -> Embedded:
    return _EMBEDDER.embed(smiles)  # type: ignore[union-attr]


def _context(encoders: bool = False) -> BaseContext:
    """A fork server where the platform has one (Linux, macOS), else spawn (Windows). For workers
    that encode, the server imports torch too (once, not in every worker); a process has one fork
    server, and the first start fixes what it imported."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD + (["hsafeat.engine"] if encoders else []))
        return context
    return multiprocessing.get_context("spawn")


def prestart(encoders: bool = False) -> None:
    """Start the fork server now (it imports RDKit in parallel with whatever the caller does next)."""
    context = _context(encoders)
    if context.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def default_workers() -> int:
    """Half the cores featurize, the other half run torch. Per molecule a worker's job (parse,
    graph, canonical SMILES) and the encoder on one core cost about the same, ~2 ms each on the
    2-core VM (session 8; session 7 had the encoder cheaper). A second worker on 2 cores measured
    +6 % (session 7, forked) and +2 % (session 8, fork server), within this VM's noise; the main
    process featurizing chunks itself while it waits measured slower (BENCHMARKS.md, "Session 7").
    1 worker on 2 cores, 32 on 64 (not measured beyond 2)."""
    return max(1, (os.cpu_count() or 2) // 2)


def share_cores(workers: int) -> None:
    """Give torch the cores the workers leave: oversubscribed threads spin against the worker
    (measured on 2 cores, 1 worker: 345 mol/s with 2 torch threads, 540 with 1)."""
    if workers > 0:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) - workers))


def ramped(chunks: Iterator[list[InputRow]], smallest: int = 128) -> Iterator[list[InputRow]]:
    """The first chunk in pieces of 128, 128, 256, 512, ... rows, then the chunks as they come:
    the encoder waits for a worker only until the first small piece is done, not a whole chunk
    (~2 s for 1,024 molecules). Outputs don't change: embeddings don't depend on batch neighbours."""
    first = next(chunks, None)
    if first is None:
        return
    start = 0
    while start < len(first):
        size = max(smallest, start)
        yield first[start:start + size]
        start += size
    yield from chunks


def _in_order(pool: ProcessPoolExecutor, job: Callable[[list[str]], T], chunks: Iterator[list[InputRow]],
              workers: int) -> Iterator[tuple[list[InputRow], T]]:
    """job over every chunk's SMILES in the pool, at most 2 chunks per worker ahead, in input order."""
    pending: deque[tuple[list[InputRow], Future[T]]] = deque()
    for chunk in ramped(chunks):
        pending.append((chunk, pool.submit(job, [r.smiles for r in chunk])))
        if len(pending) > 2 * workers:
            done, future = pending.popleft()
            yield done, future.result()
    while pending:
        done, future = pending.popleft()
        yield done, future.result()


def featurized_chunks(
    chunks: Iterator[list[InputRow]], vocab: dict[str, int], max_atoms: int, workers: int,
) -> Iterator[tuple[list[InputRow], Featurized]]:
    if workers <= 0:
        for chunk in chunks:
            yield chunk, featurize([r.smiles for r in chunk], vocab, max_atoms)
        return
    with ProcessPoolExecutor(workers, mp_context=_context(), initializer=_init, initargs=(vocab, max_atoms)) as pool:
        yield from _in_order(pool, _featurize, chunks, workers)


def embedded_chunks(
    chunks: Iterator[list[InputRow]], embedder: Embedder, workers: int,
) -> Iterator[tuple[list[InputRow], Embedded]]:
    """Each chunk featurized and encoded in a worker with embedder's weights (CPU, one thread)."""
    w = embedder.weights
    initargs = (str(w.path), w.sha256, embedder.batch_size, embedder.desc_units)
    workers = max(1, workers)
    context = _context(encoders=True)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_encoder, initargs=initargs) as pool:
        yield from _in_order(pool, _embed, chunks, workers)
