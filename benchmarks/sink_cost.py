"""Cost of the Parquet sink alone: write N rows of the shipped columns' widths (random values) in
chunks of 1,024 into 8,192-row groups, then close (flush + merge); median of repeats. Prints the
sha256 of the output, which depends only on the data, so two checkouts can be compared.

    python benchmarks/sink_cost.py --input ../shared/data/pretrain/moses_test.csv.gz -n 20000
"""
from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import read  # noqa: E402 - benchmarks/ is the script's own folder

from hsafeat.output import ParquetSink  # noqa: E402

DIMS = {"fused": 256, **{f"level_{i}": 128 for i in range(6)}, "motif": 128, "desc_pred": 200}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True)
    p.add_argument("-n", type=int, default=20000)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    smiles = read(a.input, a.n)
    n, rng = len(smiles), np.random.default_rng(0)
    emb = {k: rng.standard_normal((n, d)).astype(np.float32) for k, d in DIMS.items()}
    valid = rng.random(n) > 0.05
    writes, closes, digest = [], [], ""
    for _ in range(a.repeats):
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "o.parquet"
            t0 = time.perf_counter()
            sink = ParquetSink(out, DIMS, {"bench": 1}, run_key={"bench": 1})
            for lo in range(0, n, 1024):
                s = slice(lo, lo + 1024)
                m = len(smiles[s])
                rows = {"row_idx": np.arange(lo, lo + m), "id": [str(i) for i in range(lo, lo + m)],
                        "smiles": smiles[s], "canonical_smiles": smiles[s], "valid": valid[s],
                        "error": [None if v else "invalid" for v in valid[s]], **{k: v[s] for k, v in emb.items()}}
                sink.write(rows)
            t1 = time.perf_counter()
            sink.close()
            closes.append(time.perf_counter() - t1)
            writes.append(t1 - t0)
            digest = hashlib.sha256(out.read_bytes()).hexdigest()
    w, c = statistics.median(writes), statistics.median(closes)
    print(f"{n} rows: writes {w:.2f} s, close (flush + merge) {c:.2f} s, {(w + c) / n * 1e6:.0f} us per row; "
          f"output sha256 {digest[:16]}")


if __name__ == "__main__":
    main()
