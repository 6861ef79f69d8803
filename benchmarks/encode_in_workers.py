"""Two ways to share the cores, on the same molecules, in interleaved rounds:

  pipeline   what `hsafeat embed` does: worker processes featurize (half the cores), the main
             process encodes on the cores left;
  symmetric  one process per core featurizes *and* encodes its chunks on one torch thread, the
             main process only collects the results (as the Ray engine's actors do). Written
             before `hsafeat embed --encode-in-workers` (hsafeat.workers.embedded_chunks) and
             kept as it was, so its session-10 figures stay reproducible: unlike the product, its
             main process loads no weights. benchmarks/encode_in_workers_cli.sh measures the
             product's option.

Parquet writing is left out of both. Each schedule runs in a fresh interpreter; prints mol/s (wall
time, start-up included) and the peak RSS of every process of the run, summed (VmHWM sampled
from /proc, as benchmarks/throughput.py does).

    python benchmarks/encode_in_workers.py --input ../shared/data/pretrain/moses_test.csv.gz -n 12000 --rounds 3
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import peak_rss_mib, read  # noqa: E402 - benchmarks/ is the script's own folder

_EMBEDDER = None


def _init_encoder() -> None:
    global _EMBEDDER
    import torch

    from hsafeat.engine import Embedder

    torch.set_num_threads(1)
    _EMBEDDER = Embedder()


def _embed_chunk(smiles: list[str]) -> int:
    return len(_EMBEDDER.embed(smiles).valid)  # type: ignore[union-attr]


class _Row:  # featurized_chunks reads only .smiles
    def __init__(self, smiles: str) -> None:
        self.smiles = smiles


def run_pipeline(chunks: list[list[str]]) -> int:
    from hsafeat.engine import Embedder
    from hsafeat.workers import default_workers, featurized_chunks, prestart, share_cores

    prestart()
    embedder = Embedder()
    workers = default_workers()
    share_cores(workers)
    rows = ([_Row(s) for s in chunk] for chunk in chunks)
    return sum(len(embedder.embed_featurized(feats).valid)
               for _, feats in featurized_chunks(rows, embedder.vocab, embedder.weights.max_atoms, workers))


def run_symmetric(chunks: list[list[str]]) -> int:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["hsafeat.workers", "torch", "hsafeat.engine"])
    processes = os.cpu_count() or 1
    done = 0
    with ProcessPoolExecutor(processes, mp_context=context, initializer=_init_encoder) as pool:
        pending: deque = deque()
        for chunk in chunks:
            pending.append(pool.submit(_embed_chunk, chunk))
            if len(pending) > 2 * processes:
                done += pending.popleft().result()
        while pending:
            done += pending.popleft().result()
    return done


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True)
    p.add_argument("-n", type=int, default=12000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--chunk", type=int, default=1024)
    p.add_argument("--run", choices=["pipeline", "symmetric"], help="run one schedule here (used by the rounds)")
    p.add_argument("--out")
    a = p.parse_args()
    smiles = read(a.input, a.n)
    chunks = [smiles[i:i + a.chunk] for i in range(0, len(smiles), a.chunk)]
    if a.run:
        n = (run_pipeline if a.run == "pipeline" else run_symmetric)(chunks)
        assert n == len(smiles), (n, len(smiles))
        return
    results: dict[str, dict[str, list[float]]] = {k: {"mol_s": [], "rss_mib": []} for k in ("pipeline", "symmetric")}
    for r in range(a.rounds):
        for name, res in results.items():
            cmd = [sys.executable, __file__, "--input", a.input, "-n", str(a.n), "--chunk", str(a.chunk), "--run", name]
            start = time.perf_counter()
            peaks = peak_rss_mib(cmd)
            seconds = time.perf_counter() - start
            res["mol_s"].append(len(smiles) / seconds)
            res["rss_mib"].append(sum(peaks.values()))
            print(f"round {r + 1} {name:9s} {len(smiles) / seconds:6.0f} mol/s  peak RSS summed "
                  f"{sum(peaks.values()):6.0f} MiB over {len(peaks)} processes", flush=True)
    medians = {k: statistics.median(v["mol_s"]) for k, v in results.items()}
    print(f"median mol/s: pipeline {medians['pipeline']:.0f}, symmetric {medians['symmetric']:.0f} "
          f"({medians['symmetric'] / medians['pipeline']:.2f}x)")
    if a.out:
        Path(a.out).write_text(json.dumps({"n": len(smiles), "input": a.input, "cores": os.cpu_count(),
                                           "results": results, "median_mol_s": medians}, indent=1))


if __name__ == "__main__":
    main()
