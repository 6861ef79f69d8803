"""`hsafeat embed` end to end in two checkouts of hsafeat, alternating runs on the same molecules.

    git worktree add /tmp/old <commit>
    python benchmarks/compare_checkouts.py /tmp/old . --input ../shared/data/pretrain/moses_test.csv.gz \
        -n 20000 --rounds 3 --weights hsanet-moses-v2

Speed on a shared VM drifts between sessions by more than most changes, so a change is judged by
runs of the old and the new code interleaved in one sitting (same machine state, same file, same
weights). Prints each run's mol/s (wall time, start-up included) and the medians."""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from throughput import read


def run(checkout: Path, src: Path, out: Path, weights: str | None) -> float:
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "hsafeat", "embed", str(src), "-o", str(out)] + (["--weights", weights] if weights else [])
    env = {**os.environ, "PYTHONPATH": str(checkout.resolve())}
    t = time.perf_counter()
    subprocess.run(cmd, cwd=checkout, env=env, check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--input", required=True)
    ap.add_argument("-n", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--weights", help="the same weights for both (must exist in both checkouts)")
    a = ap.parse_args()
    smiles = read(a.input, a.n)
    rates: dict[str, list[float]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "in.smi"
        src.write_text("".join(f"{s} m{i}\n" for i, s in enumerate(smiles)))
        for r in range(a.rounds):
            for name, checkout in (("old", a.old), ("new", a.new)):
                rates[name].append(len(smiles) / run(checkout, src, Path(d) / f"{name}.parquet", a.weights))
                print(f"round {r + 1} {name}: {rates[name][-1]:.0f} mol/s", flush=True)
    old, new = statistics.median(rates["old"]), statistics.median(rates["new"])
    print(f"median old {old:.0f} mol/s, new {new:.0f} mol/s, new/old {new / old:.2f}")


if __name__ == "__main__":
    main()
