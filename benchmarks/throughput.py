"""Throughput of `hsafeat embed` against the RDKit parse + ECFP4 floor, on the same molecules.

    python benchmarks/throughput.py --input ../shared/data/pretrain/moses_test.csv.gz -n 20000

Prints, for each stage, the median mol/s over --repeats runs after one warm-up: RDKit parse +
ECFP4 (single process, the reference), then hsafeat's parse, graph build and encoder stages
alone (single process), and `hsafeat embed` end to end (read -> parse -> graph -> encoder ->
Parquet, as a subprocess, with its default workers) with its peak RSS. Writes JSON with --out."""
from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
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

    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator

    from hsafeat.chem.graph import mol_to_graph
    from hsafeat.chem.parse import parse_smiles
    from hsafeat.engine import Embedder, featurize

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
    results["hsafeat_graph"] = n / timed(lambda: [mol_to_graph(m) for m in mols if m is not None], a.repeats)
    embedder = Embedder(a.weights)
    feats = featurize(smiles, embedder.vocab, embedder.weights.max_atoms)
    results["hsafeat_encoder"] = n / timed(lambda: embedder.embed_featurized(feats), a.repeats)

    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "in.smi"
        src.write_text("".join(f"{s} m{i}\n" for i, s in enumerate(smiles)))
        cmd = [sys.executable, "-m", "hsafeat", "embed", str(src), "-o", str(Path(d) / "out.parquet")]
        if a.weights:
            cmd += ["--weights", a.weights]
        results["hsafeat_embed_end_to_end"] = n / timed(lambda: subprocess.run(cmd, check=True, capture_output=True), a.repeats)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    ratio = results["hsafeat_embed_end_to_end"] / results["rdkit_parse_ecfp4"]
    print(f"{n} molecules from {a.input}; median of {a.repeats} after a warm-up; {os.cpu_count()} cores")
    for k, v in results.items():
        print(f"  {k:28s} {v:9.0f} mol/s")
    print(f"  end-to-end / reference      {ratio:9.3f}")
    print(f"  peak RSS (largest child)    {peak_rss_mb:9.0f} MiB")
    if a.out:
        Path(a.out).write_text(json.dumps({
            "n": n, "input": a.input, "repeats": a.repeats, "mol_per_s": results, "ratio_to_reference": ratio,
            "peak_rss_mib": peak_rss_mb, "cores": os.cpu_count(), "machine": platform.machine(),
            "weights": embedder.weights.name, "python": sys.version.split()[0],
        }, indent=1))


if __name__ == "__main__":
    main()
