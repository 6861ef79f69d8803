"""Featurization in worker processes, overlapped with inference in the main process.

RDKit parsing and graph building are pure Python + C++ and hold the GIL, so threads would
serialise them with torch; processes don't. Chunks are submitted a bounded distance ahead of
the encoder (memory stays constant) and come back in input order.

Workers come from a fork server that imported only hsafeat.chem (RDKit, numpy), never torch: a
worker forked from the main process carried torch's pages (peak RSS 223 MiB, 355-370 MiB while
torch-geometric was imported) against 93 MiB this way beside an ~80 MiB server, and
forking after torch has started its thread pools is unsafe. `prestart` launches the server while
the main process is still importing torch. Like any spawn-style start, each worker imports the
caller's main module again: a script that embeds with workers through the Python API needs the
usual `if __name__ == "__main__":` guard.

`embedded_chunks` is the other schedule (`hsafeat embed --encode-in-workers`): every worker
featurizes *and* encodes its chunks on one torch thread, and the main process only writes. One
process per core scales with the cores (two encoder processes on this 2-core VM each run at their
solo speed, while a second torch thread in one process adds ~1.1-1.5x) and needs no balance
between the stages, but every worker holds torch, the weights and an encoder's heap: on 2 cores
1.06-1.14x the default's speed at ~1.9x its memory (BENCHMARKS.md, "--encode-in-workers"), so it is opt-in.

Helper processes never outlive the process that owns them, however it dies (`kill -9` included;
issue 18). A worker exits when its owner's sentinel pipe closes (a watcher thread, any platform)
and, on Linux, when the fork server dies (PR_SET_PDEATHSIG); the fork server, when started from the
owner's main thread, dies with the owner (PR_SET_PDEATHSIG), else when its last client is gone
(multiprocessing's own "alive" pipe, which every worker also holds). multiprocessing's resource
tracker exits by itself once the owner and the workers, who hold its pipe, are gone."""
from __future__ import annotations

import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing.context import BaseContext
from typing import TYPE_CHECKING, TypeVar

from hsafeat import cores
from hsafeat.chem.featurize import Featurized, featurize

if TYPE_CHECKING:  # the workers import this module: keep pyarrow (and torch, for featurizing workers) out
    from hsafeat.engine import Embedded, Embedder
    from hsafeat.io import InputRow

T = TypeVar("T")
_VOCAB: dict[str, int] = {}
_MAX_ATOMS = 0
_TOKEN_LEN = 0
_PRELOAD = ["hsafeat.workers"]  # and through it hsafeat.chem: what every worker runs
_OWNER_ENV = "HSAFEAT_FORK_SERVER_OWNER"  # the owner's pid, seen only by a fork server it starts
_START_LOCK = threading.Lock()
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> bool:
    """Linux: have the kernel SIGKILL this process when the thread that created it exits. Must run
    in the child; the caller then checks that the parent is still the same (it may have died
    first). False where unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _exit_when_closed(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])  # readable once the owner has exited
    os._exit(1)


def _exit_with_owner() -> None:
    """In a worker, first thing: exit when the owning process dies, not only when it says so."""
    owner = multiprocessing.parent_process()
    if owner is None:
        return
    parent = os.getppid()
    # The fork server is single-threaded, so its death, and only that, fires the signal. A worker
    # started by the owner itself (spawn) is left to the watcher: the signal would fire when
    # whichever owner thread started it exits.
    if parent != owner.pid and die_with_parent() and os.getppid() != parent:
        os._exit(1)
    if owner.sentinel is not None:
        threading.Thread(target=_exit_when_closed, args=(owner.sentinel,), name="hsafeat-owner-watch",
                         daemon=True).start()


def _start_fork_server() -> None:
    """Start this process's fork server if it is not running. From the main thread it is asked
    to die with this process: PR_SET_PDEATHSIG fires when the creating *thread* exits, and only
    the main thread lasts as long as the process."""
    from multiprocessing import forkserver

    with _START_LOCK:
        if threading.current_thread() is not threading.main_thread():
            forkserver.ensure_running()
            return
        os.environ[_OWNER_ENV] = str(os.getpid())
        try:
            forkserver.ensure_running()
        finally:
            os.environ.pop(_OWNER_ENV, None)


def _init(vocab: dict[str, int], max_atoms: int, token_len: int = 0) -> None:
    global _VOCAB, _MAX_ATOMS, _TOKEN_LEN
    _exit_with_owner()
    _VOCAB, _MAX_ATOMS, _TOKEN_LEN = vocab, max_atoms, token_len


def _featurize(smiles: list[str]) -> Featurized:
    return featurize(smiles, _VOCAB, _MAX_ATOMS, _TOKEN_LEN)


_EMBEDDER: Embedder | None = None


def _init_encoder(weights_dir: str, sha256: str, batch_size: int, desc_units: str = "standard") -> None:
    global _EMBEDDER
    _exit_with_owner()
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
    _started(encoders)


def _started(encoders: bool = False) -> BaseContext:
    """_context(encoders) with its fork server running, started here (not by the pool in
    whichever thread submits first) so that it can die with this process."""
    context = _context(encoders)
    if context.get_start_method() == "forkserver":
        _start_fork_server()
    return context


def default_workers() -> int:
    """Half the cores featurize, the other half run torch. Per molecule a worker's job (parse,
    graph, canonical SMILES) and the encoder on one core cost about the same: ~2.2 and ~2.5 ms per
    drug-like molecule on the 2-core VM. A second worker on 2 cores measured +2 to +6 %, within
    this VM's noise; the main
    process featurizing chunks itself while it waits measured slower (docs/DESIGN.md, "Tried and dropped").
    1 worker on 2 cores, 32 on 64 (not measured beyond 2). Cores: those this process may use."""
    return max(1, cores.available_cores() // 2)


def share_cores(workers: int, device: str = "cpu") -> None:
    """Give torch the cores the workers leave: oversubscribed threads spin against the worker
    (measured on 2 cores, 1 worker: 345 mol/s with 2 torch threads, 540 with 1). With no workers
    this process featurizes too, and a CPU encoder runs on one thread: with two OpenMP threads
    every small op waits for the slower core (beside one busy process, `hsafeat embed --workers 0`
    of 700 molecules took 4.5 s on two threads, 3.3 s on one). `device`: the encoder's device
    type; a GPU encoder keeps the caller's count, capped at the cores."""
    import torch

    available = cores.available_cores()
    if workers > 0:
        torch.set_num_threads(max(1, available - workers))
    elif device == "cpu":
        torch.set_num_threads(1)
    elif torch.get_num_threads() > available:  # torch counts the machine's cores, not a quota's
        torch.set_num_threads(available)


@contextmanager
def torch_threads_restored() -> Iterator[None]:
    """Put torch's global thread count back as it was when the block ends (share_cores changes
    it for a run; a Python API caller keeps the count they chose)."""
    import torch

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


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


@contextmanager
def _pool(workers: int, context: BaseContext, initializer: Callable[..., None],
          initargs: tuple) -> Iterator[ProcessPoolExecutor]:
    """A process pool that, when its block ends, waits for its workers only if the block finished.
    Left early (Ctrl-C, SIGTERM, an error, the consumer closing the generator) it cancels what is
    queued and terminates the workers, without waiting for the chunks they are on: the executor's
    own exit (shutdown(wait=True)) waited for them, so an interrupted run went on for seconds, and
    a second Ctrl-C landing in that wait left the executor half shut down and the run hung at exit."""
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=initializer, initargs=initargs)
    try:
        yield pool
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown(wait=True)


def _stop(pool: ProcessPoolExecutor, timeout: float = 5.0) -> None:
    """Shut the pool down now: queued chunks cancelled, workers terminated (its manager thread
    then sees them gone, fails what they held and exits), waited for at most `timeout` seconds."""
    processes = list((pool._processes or {}).values())  # shutdown() drops the executor's references
    manager = pool._executor_manager_thread
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout)
    if manager is not None:
        manager.join(timeout)


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
    chunks: Iterator[list[InputRow]], vocab: dict[str, int], max_atoms: int, workers: int, token_len: int = 0,
) -> Iterator[tuple[list[InputRow], Featurized]]:
    """token_len: SMILES token ids per molecule for weights with the SMILES branch (0: none)."""
    if workers <= 0:
        for chunk in chunks:
            yield chunk, featurize([r.smiles for r in chunk], vocab, max_atoms, token_len)
        return
    with _pool(workers, _started(), _init, (vocab, max_atoms, token_len)) as pool:
        yield from _in_order(pool, _featurize, chunks, workers)


def embedded_chunks(
    chunks: Iterator[list[InputRow]], embedder: Embedder, workers: int,
) -> Iterator[tuple[list[InputRow], Embedded]]:
    """Each chunk featurized and encoded in a worker with embedder's weights (CPU, one thread)."""
    w = embedder.weights
    initargs = (str(w.path), w.sha256, embedder.batch_size, embedder.desc_units)
    workers = max(1, workers)
    with _pool(workers, _started(encoders=True), _init_encoder, initargs) as pool:
        yield from _in_order(pool, _embed, chunks, workers)


def _as_fork_server() -> None:
    """Run on import in a fork server that the owner's main thread started: die with the owner.
    If the owner is already gone the signal will never come, so exit now."""
    owner = os.environ.pop(_OWNER_ENV, None)  # popped: the workers forked from here must not see it
    if owner is not None and die_with_parent() and os.getppid() != int(owner):
        os._exit(0)


_as_fork_server()
