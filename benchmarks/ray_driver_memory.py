"""Peak RSS of the Ray engine's driver on a small and a large input: it should not grow with the input.

    python benchmarks/ray_driver_memory.py --sizes 10000,200000 --out benchmarks/results/ray_driver_memory.json
    python benchmarks/ray_driver_memory.py --input ../shared/data/pretrain/moses_test.csv.gz --sizes 10000,200000

For each size, writes that many molecules to a .smi file (the first SMILES of --input, cycled if
it is shorter; without --input, distinct generated chain molecules), runs
`hsafeat embed FILE -o OUT --engine ray` as a subprocess (a local Ray unless $RAY_ADDRESS is set)
and reads the driver's own VmHWM from /proc/self/status as it exits (the actors and Ray's own
processes are not the driver and are not counted). Prints a table and the ratio of the largest
size's peak to the smallest's (issue 19's bar: within 10 %)."""
from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

# The CLI, with the driver's peak RSS written to a file at exit (atexit runs on sys.exit too).
DRIVER = """
import atexit, sys
hwm_path = sys.argv.pop(1)
def record():
    with open('/proc/self/status') as f:
        peak = next(line.split()[1] for line in f if line.startswith('VmHWM'))
    with open(hwm_path, 'w') as out:
        out.write(peak)
atexit.register(record)
sys.argv[0] = 'hsafeat'
from hsafeat.cli import main
main()
"""

PIECES = ["C", "O", "N", "C(=O)", "C(F)", "c1ccccc1", "C(C)", "S"]  # each joins any other into valid SMILES


def generated() -> Iterator[str]:
    """Distinct chain molecules, 8-40 heavy atoms: 'C' then six pieces chosen by the digits of i."""
    for i in itertools.count():
        digits = [(i // len(PIECES) ** k) % len(PIECES) for k in range(6)]
        yield "C" + "".join(PIECES[d] for d in digits) + "C" * (i // len(PIECES) ** 6)


def from_file(path: str) -> Iterator[str]:
    """The first field of each line of a .smi/.csv(.gz) file, header skipped, cycled."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        smiles = [line.replace(",", " ").split()[0] for line in f if line.strip() and not line.startswith("#")]
    if smiles and "smiles" in smiles[0].lower():
        smiles = smiles[1:]
    if not smiles:
        raise SystemExit(f"no SMILES in {path}")
    return itertools.cycle(smiles)


def write_input(path: Path, n: int, molecules: Iterator[str]) -> None:
    with open(path, "w") as f:
        for i, smiles in enumerate(itertools.islice(molecules, n)):
            f.write(f"{smiles} m{i}\n")


def run_driver(input_path: Path, output: Path, extra: list[str]) -> dict:
    hwm = output.with_suffix(".vmhwm")
    cmd = [sys.executable, "-c", DRIVER, str(hwm), "embed", str(input_path), "-o", str(output),
           "--engine", "ray", "--overwrite", *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"hsafeat embed failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return {"driver_peak_rss_kb": int(hwm.read_text()), "seconds": round(seconds, 1),
            "summary": proc.stderr.strip().splitlines()[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,200000", help="comma-separated molecule counts")
    parser.add_argument("--input", help="SMILES file to draw molecules from (default: generated molecules)")
    parser.add_argument("--actors", type=int, help="passed to hsafeat embed --actors")
    parser.add_argument("--device", default="auto", help="passed to hsafeat embed --device")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    extra = ["--device", args.device] + (["--actors", str(args.actors)] if args.actors else [])
    results = []
    with tempfile.TemporaryDirectory(prefix="ray_driver_memory_") as tmp:
        for n in sizes:
            input_path = Path(tmp) / f"molecules_{n}.smi"
            write_input(input_path, n, from_file(args.input) if args.input else generated())
            result = {"molecules": n, **run_driver(input_path, Path(tmp) / f"out_{n}.parquet", extra)}
            input_path.unlink()
            results.append(result)
            print(f"{n:>9} molecules  driver peak RSS {result['driver_peak_rss_kb'] / 1024:8.1f} MiB  "
                  f"{result['seconds']:7.1f} s  ({result['summary']})", flush=True)
    ratio = results[-1]["driver_peak_rss_kb"] / results[0]["driver_peak_rss_kb"]
    print(f"peak RSS ratio {sizes[-1]} / {sizes[0]} molecules: {ratio:.3f}")
    if args.out:
        Path(args.out).write_text(json.dumps({
            "command": sys.argv, "input": args.input or "generated", "cpus": len(os.sched_getaffinity(0)),
            "results": results, "ratio_largest_to_smallest": round(ratio, 4)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
