"""Throughput of `hsafeat embed` against the RDKit parse + ECFP4 floor, on the same molecules.

    python benchmarks/throughput.py --input moses_test.csv.gz -n 20000 --repeats 3 --out benchmarks/results/throughput_20k.json

Prints, for each stage, the median mol/s over --repeats runs after one warm-up: RDKit parse +
ECFP4 (single process, the reference), then hsafeat's stages alone in one process (parse, graph
build, a featurization worker's whole job, encoder on one torch thread and on all cores, Parquet
write), and `hsafeat embed` end to end (read -> parse -> graph -> encoder -> Parquet, as a
subprocess with its default workers, so including its start-up, also shown alone) with its peak
RSS. Writes JSON with --out.

Three derived lines bound what any scheduling can reach on this machine: the *pipeline ceiling*
(all cores busy on the single-core stage costs: featurize + encoder + write, nothing lost to
start-up or imbalance), the *RDKit floor* (all cores doing only the RDKit calls the graph cannot
do without: parse, canonical SMILES, BRICS bonds, canonical ranks, distance matrix) and the
*RDKit + encoder ceiling* (those calls plus the encoder, with no Python feature code, I/O or
start-up)."""
from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def read(path: str, n: int) -> list[str]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        lines = [ln.split(",")[0].split()[0] for ln in f if ln.strip()]
    if lines and "smiles" in lines[0].lower():
        lines = lines[1:]
    return lines[:n]


from peak_rss import tree  # noqa: E402 - benchmarks/ is the script's own folder


def fresh_run(cmd: list[str]) -> None:
    """`hsafeat embed … -o OUT` again: the previous run's OUT goes first (hsafeat never replaces a file)."""
    Path(cmd[cmd.index("-o") + 1]).unlink(missing_ok=True)
    subprocess.run(cmd, check=True, capture_output=True)


def peak_rss_mib(cmd: list[str]) -> dict[int, float]:
    """Run cmd once; the peak RSS (VmHWM) of it and each of its child processes, sampled from /proc
    every 0.2 s. (getrusage(RUSAGE_CHILDREN) would report this script's own size: a forked child
    counts the parent's pages until it execs.)"""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peaks: dict[int, float] = {}

    while proc.poll() is None:
        for pid in tree(proc.pid):
            try:
                with open(f"/proc/{pid}/status") as f:
                    hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
                peaks[pid] = max(peaks.get(pid, 0.0), hwm / 1024)
            except (OSError, StopIteration):
                pass
        time.sleep(0.2)
    return peaks


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("-n", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--weights")
    ap.add_argument("--out")
    a = ap.parse_args()

    import torch
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator

    from hsafeat.chem.featurize import featurize
    from hsafeat.chem.fragment_names import FragmentNames, keyable
    from hsafeat.chem.graph import mol_to_graph
    from hsafeat.chem.parse import may_carry_stereo, parse_smiles
    from hsafeat.engine import Embedder
    from hsafeat.output import ParquetSink

    smiles = read(a.input, a.n)
    n = len(smiles)
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)

    def reference() -> None:
        for s in smiles:
            m = Chem.MolFromSmiles(s)
            if m is not None:
                gen.GetCountFingerprintAsNumPy(m)

    results: dict[str, float] = {}
    results["rdkit_parse_ecfp4"] = n / timed(reference, a.repeats)
    mols = [parse_smiles(s).mol for s in smiles]
    results["hsafeat_parse"] = n / timed(lambda: [parse_smiles(s) for s in smiles], a.repeats)

    def graph_build() -> None:  # as featurize runs it, fragment names remembered from a fresh start
        names = FragmentNames()
        for s, m in zip(smiles, mols):
            if m is not None:
                mol_to_graph(m, None, may_carry_stereo(s), names if keyable(s) else None)

    results["hsafeat_graph"] = n / timed(graph_build, a.repeats)

    def rdkit_floor() -> None:
        # the RDKit calls every molecule needs: parse, canonical SMILES, the BRICS search, canonical
        # ranks and the distance matrix. Fragment names are left out: they are
        # remembered across molecules (hsafeat/chem/fragment_names.py), written for ~4 % of fragments.
        for s in smiles:
            m = Chem.MolFromSmiles(s)
            if m is not None:
                Chem.MolToSmiles(m)
                Chem.FragmentOnBRICSBonds(m)
                Chem.CanonicalRankAtoms(m, breakTies=True)
                Chem.GetDistanceMatrix(m)

    results["rdkit_calls_graph_needs"] = n / timed(rdkit_floor, a.repeats)
    embedder = Embedder(a.weights)

    def worker_job() -> None:
        # as a worker does it: chunks of 1,024, each result handed on (one call over all n molecules
        # held every graph alive and measured ~1.4x slower)
        for lo in range(0, n, 1024):
            featurize(smiles[lo:lo + 1024], embedder.vocab, embedder.weights.max_atoms)

    results["hsafeat_featurize_worker"] = n / timed(worker_job, a.repeats)
    feats = featurize(smiles, embedder.vocab, embedder.weights.max_atoms)
    cores = torch.get_num_threads()
    torch.set_num_threads(1)
    results["hsafeat_encoder_1_thread"] = n / timed(lambda: embedder.embed_featurized(feats), a.repeats)
    torch.set_num_threads(cores)
    results[f"hsafeat_encoder_{cores}_threads"] = n / timed(lambda: embedder.embed_featurized(feats), a.repeats)
    embedded = embedder.embed_featurized(feats)
    rows = {"row_idx": list(range(n)), "id": [str(i) for i in range(n)], "smiles": smiles,
            "canonical_smiles": embedded.canonical, "valid": embedded.valid, "error": embedded.errors,
            **embedded.embeddings}

    def write() -> None:
        with tempfile.TemporaryDirectory() as d, ParquetSink(Path(d) / "w.parquet", embedder.dims, {}) as sink:
            for lo in range(0, n, 1024):
                sink.write({k: v[lo:lo + 1024] for k, v in rows.items()})

    results["hsafeat_parquet_write"] = n / timed(write, a.repeats)

    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "in.smi"
        src.write_text("".join(f"{s} m{i}\n" for i, s in enumerate(smiles)))
        out = Path(d) / "out.parquet"
        cmd = [sys.executable, "-m", "hsafeat", "embed", str(src), "-o", str(out)]
        if a.weights:
            cmd += ["--weights", a.weights]
        one = Path(d) / "one.smi"
        one.write_text("CCO\n")
        startup_cmd = [*cmd[:4], str(one), "-o", str(Path(d) / "one.parquet"), *cmd[7:]]
        results["hsafeat_embed_end_to_end"] = n / timed(lambda: fresh_run(cmd), a.repeats)
        startup = timed(lambda: fresh_run(startup_cmd), a.repeats)
        out.unlink()
        peaks = sorted(peak_rss_mib(cmd).values(), reverse=True)
    peak_rss_mb, peak_workers_mb = peaks[0], sum(peaks[1:])

    ratio = results["hsafeat_embed_end_to_end"] / results["rdkit_parse_ecfp4"]
    cpus = os.cpu_count() or 1
    single_core = ("hsafeat_featurize_worker", "hsafeat_encoder_1_thread", "hsafeat_parquet_write")
    results["pipeline_ceiling"] = cpus / sum(1 / results[k] for k in single_core)
    results["rdkit_floor_ceiling"] = cpus * results["rdkit_calls_graph_needs"]
    # all cores doing nothing but those RDKit calls and the encoder's own work (one thread each)
    results["rdkit_plus_encoder_ceiling"] = cpus / (1 / results["rdkit_calls_graph_needs"]
                                                    + 1 / results["hsafeat_encoder_1_thread"])
    print(f"{n} molecules from {a.input}; median of {a.repeats} after a warm-up; {os.cpu_count()} cores")
    for k, v in results.items():
        print(f"  {k:28s} {v:9.0f} mol/s")
    print(f"  end-to-end / reference      {ratio:9.3f}")
    print(f"  start-up (embed 1 molecule) {startup:9.2f} s")
    print(f"  peak RSS, main process      {peak_rss_mb:9.0f} MiB")
    print(f"  peak RSS, workers (summed)  {peak_workers_mb:9.0f} MiB")
    if a.out:
        Path(a.out).write_text(json.dumps({
            "n": n, "input": a.input, "repeats": a.repeats, "mol_per_s": results, "ratio_to_reference": ratio,
            "peak_rss_mib": peak_rss_mb, "peak_rss_workers_mib": peak_workers_mb, "startup_s": startup,
            "cores": os.cpu_count(), "machine": platform.machine(),
            "weights": embedder.weights.name, "python": sys.version.split()[0],
        }, indent=1))


if __name__ == "__main__":
    main()
