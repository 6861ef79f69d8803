"""A SIGKILLed `hsafeat embed` leaves no process behind: its fork server, workers and
multiprocessing's resource tracker all exit with it (issue 18)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli import REPO

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")


def stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a live process, None once it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()  # after "(comm)", which may hold spaces
    except OSError:
        return None
    return None if fields[0] == "Z" else (int(fields[1]), fields[0], int(fields[19]))


def descendants(root: int) -> dict[int, int]:
    """Every live process below root, with its start time (a reused pid is another process)."""
    parents: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := stat(int(entry))) is not None:
            parents.setdefault(info[0], []).append(int(entry))
            starts[int(entry)] = info[2]
    found: dict[int, int] = {}
    todo = list(parents.get(root, []))
    while todo:
        pid = todo.pop()
        found[pid] = starts[pid]
        todo += parents.get(pid, [])
    return found


def command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:100]
    except OSError:
        return "?"


def still_alive(recorded: dict[int, int]) -> dict[int, int]:
    return {pid: start for pid, start in recorded.items() if (info := stat(pid)) is not None and info[2] == start}


def wait_for_worker(proc: subprocess.Popen) -> None:
    """Until the process has a grandchild: a worker, forked by its fork server."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if any((info := stat(pid)) is not None and info[0] != proc.pid for pid in descendants(proc.pid)):
            return
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"no worker seen before the process ended or 60 s passed: {output(proc)}")


def output(proc: subprocess.Popen) -> tuple[bytes, bytes] | str:
    try:
        return proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:  # a helper still holds the pipes
        return "(pipes still open)"


def assert_kill_leaves_nothing(proc: subprocess.Popen) -> None:
    """SIGKILL proc; none of the processes below it may be alive 5 s later."""
    helpers = descendants(proc.pid)
    print("helpers of", proc.pid, {pid: command(pid) for pid in helpers})  # shown with -s or on failure
    proc.kill()
    proc.wait(timeout=10)  # not its pipes: a live helper would hold them open
    deadline = time.monotonic() + 5
    while still_alive(helpers) and time.monotonic() < deadline:
        time.sleep(0.02)
    left = {pid: command(pid) for pid in still_alive(helpers)}
    for pid in left:  # leave no orphans behind this test either
        os.kill(pid, signal.SIGKILL)
    assert not left, f"alive 5 s after their owner was killed (of {sorted(helpers)}): {left}"


def test_no_process_outlives_a_killed_run(tiny_weights: Path, tmp_path: Path) -> None:
    drugs = [ln.split()[0] for ln in (REPO / "tests" / "data" / "drugs.smi").read_text().splitlines() if ln.strip()]
    long_input = tmp_path / "long.smi"  # still running when the worker has started
    long_input.write_text("".join(f"{s} m{i}\n" for i, s in enumerate(drugs * 300)))
    cmd = [sys.executable, "-m", "hsafeat", "embed", str(long_input), "-o", str(tmp_path / "out.parquet"),
           "--weights", str(tiny_weights), "--workers", "1"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}) as proc:
        wait_for_worker(proc)
        assert_kill_leaves_nothing(proc)


# The fork server started from a thread that ends before the pool does: it must keep serving (a
# parent-death signal would fire at that thread's exit), and with no such signal the workers
# still exit with their owner (their own watcher).
THREAD_STARTED = """
import itertools, threading
from hsafeat import workers
from hsafeat.io import InputRow

go = threading.Event()
starter = threading.Thread(target=lambda: (workers.prestart(), go.wait()))
starter.start()
rows = ([InputRow(i, str(i), "CCO")] for i in itertools.count())
done = workers.featurized_chunks(rows, {"[UNK]": 0}, 500, workers=1)
next(done)
go.set()
starter.join()
for _ in range(20):
    next(done)
print("served", flush=True)
threading.Event().wait()
"""


def test_workers_of_a_thread_started_fork_server_outlive_the_thread_not_the_owner() -> None:
    with subprocess.Popen([sys.executable, "-c", THREAD_STARTED], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          cwd=REPO) as proc:
        if proc.stdout.readline() != b"served\n":  # type: ignore[union-attr]
            proc.kill()
            raise AssertionError(f"the pool broke: {output(proc)}")
        assert_kill_leaves_nothing(proc)
