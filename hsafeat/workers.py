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
usual `if __name__ == "__main__":` guard."""
from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing.context import BaseContext
from typing import TYPE_CHECKING

from hsafeat.chem.featurize import Featurized, featurize

if TYPE_CHECKING:  # the workers import this module: keep pyarrow out of them
    from hsafeat.io import InputRow

_VOCAB: dict[str, int] = {}
_MAX_ATOMS = 0
_PRELOAD = ["hsafeat.workers"]  # and through it hsafeat.chem: what every worker runs


def _init(vocab: dict[str, int], max_atoms: int) -> None:
    global _VOCAB, _MAX_ATOMS
    _VOCAB, _MAX_ATOMS = vocab, max_atoms


def _featurize(smiles: list[str]) -> Featurized:
    return featurize(smiles, _VOCAB, _MAX_ATOMS)


def _context() -> BaseContext:
    """A fork server where the platform has one (Linux, macOS), else spawn (Windows)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        return context
    return multiprocessing.get_context("spawn")


def prestart() -> None:
    """Start the fork server now (it imports RDKit in parallel with whatever the caller does next)."""
    context = _context()
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


def featurized_chunks(
    chunks: Iterator[list[InputRow]], vocab: dict[str, int], max_atoms: int, workers: int,
) -> Iterator[tuple[list[InputRow], Featurized]]:
    if workers <= 0:
        for chunk in chunks:
            yield chunk, featurize([r.smiles for r in chunk], vocab, max_atoms)
        return
    chunks = ramped(chunks)
    with ProcessPoolExecutor(workers, mp_context=_context(), initializer=_init, initargs=(vocab, max_atoms)) as pool:
        pending: deque[tuple[list[InputRow], Future[Featurized]]] = deque()
        for chunk in chunks:
            pending.append((chunk, pool.submit(_featurize, [r.smiles for r in chunk])))
            if len(pending) > 2 * workers:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
