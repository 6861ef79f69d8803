"""Run a command and record the peak RSS (VmHWM) of it and of each of its child processes.

    python benchmarks/peak_rss.py benchmarks/results/peak_rss_moses_full.json \\
        hsafeat embed moses_train.csv.gz -o /tmp/moses_full.parquet

Samples /proc every second and rewrites the JSON each time (so a long run can be watched):
elapsed seconds, exit code, and peak RSS in kB per process id (the first is the command itself)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def tree(pid: int) -> list[int]:
    found = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [q for c in f.read().split() for q in tree(int(c))]
    except OSError:
        pass
    return found


def main() -> None:
    log, cmd = sys.argv[1], sys.argv[2:]
    proc = subprocess.Popen(cmd)
    peaks: dict[int, int] = {}
    start = time.time()

    def save(**extra: object) -> None:
        with open(log, "w") as f:
            json.dump({"command": cmd, "elapsed_s": time.time() - start, **extra, "peak_rss_kb_per_process": peaks}, f)

    while proc.poll() is None:
        for pid in tree(proc.pid):
            try:
                with open(f"/proc/{pid}/status") as f:
                    hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
                peaks[pid] = max(peaks.get(pid, 0), hwm)
            except (OSError, StopIteration):
                pass
        save()
        time.sleep(1)
    save(exit=proc.returncode)
    print(json.dumps(peaks))


if __name__ == "__main__":
    main()
