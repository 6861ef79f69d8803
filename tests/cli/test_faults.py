"""Faults in a real process: SIGKILL and SIGTERM mid-run leave nothing at the destination and
--resume finishes the same file an uninterrupted run writes; a second Ctrl-C while a run with
workers winds down still exits 130, leaving no process; a full disk is one clear error."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli import (
    REPO,
    assert_ok,
    assert_one_line_error,
    invoke,
    metadata,
    read,
    single_thread_torch,  # noqa: F401 - autouse fixture
    tmp_leftovers,
)
from tests.cli.test_orphans import command, descendants, still_alive

ROW_GROUP = 32


@pytest.fixture(scope="module")
def big_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    drugs = (REPO / "tests" / "data" / "drugs.smi").read_text().splitlines()
    lines = [f"{line.split()[0]} m{i}" for i, line in enumerate(drugs * 60)]
    lines[17] = "C1CC not-a-ring"
    path = tmp_path_factory.mktemp("faults") / "big.smi"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def uninterrupted(big_input: Path, tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "whole.parquet"
    assert_ok(invoke(["embed", big_input, "-o", out, "--row-group-size", ROW_GROUP, "--workers", "0"], tiny_weights))
    return out


def start(big_input: Path, out: Path, weights: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "hsafeat", "embed", str(big_input), "-o", str(out), "--weights", str(weights),
           "--row-group-size", str(ROW_GROUP), "--workers", "0", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def wait_for_parts(out: Path, proc: subprocess.Popen, n: int = 3) -> None:
    work = out.parent / f".{out.name}.parts"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(work.glob("part-*.arrow"))) >= n:
            return
        time.sleep(0.01)
    raise AssertionError(f"the run ended or stalled before writing {n} row groups: {proc.communicate()}")


def assert_same_file(a: Path, b: Path) -> None:
    assert read(a).equals(read(b))
    ma, mb = metadata(a), metadata(b)
    for volatile in ("created_at", "input"):
        ma.pop(volatile), mb.pop(volatile)
    assert ma == mb


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_leaves_nothing_and_resume_finishes_it(
    sig: signal.Signals, big_input: Path, tiny_weights: Path, uninterrupted: Path, tmp_path: Path,
) -> None:
    out = tmp_path / "out.parquet"
    proc = start(big_input, out, tiny_weights)
    wait_for_parts(out, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert not out.exists()
    assert b"Traceback" not in err
    if sig == signal.SIGTERM:
        assert proc.returncode == 130
        assert b"--resume" in err
    resumed = invoke(["embed", big_input, "-o", out, "--row-group-size", ROW_GROUP, "--workers", "0", "--resume"],
                     tiny_weights)
    assert_ok(resumed)
    assert "resumed after" in resumed.stderr
    assert_same_file(out, uninterrupted)
    assert tmp_leftovers(tmp_path) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")
@pytest.mark.parametrize("schedule", [["--workers", "2"], ["--workers", "2", "--encode-in-workers"]])
def test_second_ctrl_c_cannot_hang_a_run_with_workers(
    schedule: list[str], big_input: Path, tiny_weights: Path, uninterrupted: Path, tmp_path: Path,
) -> None:
    """Two SIGINTs 50 ms apart: the second one used to land in the pool's shutdown and the run never
    exited (fork server, workers and resource tracker alive with it)."""
    out = tmp_path / "out.parquet"
    proc = start(big_input, out, tiny_weights, *schedule)
    wait_for_parts(out, proc)
    helpers = descendants(proc.pid)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        for pid in [proc.pid, *still_alive(helpers)]:
            os.kill(pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"still running 30 s after two SIGINTs; helpers {helpers}") from None
    assert proc.returncode == 130, err
    assert err.decode().strip().splitlines()[-1].startswith("hsafeat: error: interrupted; finished row groups are kept")
    assert b"Traceback" not in err
    assert len(list((out.parent / f".{out.name}.parts").glob("part-*.arrow"))) >= 3
    deadline = time.monotonic() + 5
    while still_alive(helpers) and time.monotonic() < deadline:
        time.sleep(0.02)
    left = {pid: command(pid) for pid in still_alive(helpers)}
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"alive 5 s after the run exited (of {sorted(helpers)}): {left}"
    resumed = invoke(["embed", big_input, "-o", out, "--row-group-size", ROW_GROUP, "--workers", "0", "--resume"],
                     tiny_weights)
    assert_ok(resumed)
    assert "resumed after" in resumed.stderr
    assert_same_file(out, uninterrupted)


def test_resume_refuses_other_options_and_plain_rerun_starts_over(
    big_input: Path, tiny_weights: Path, uninterrupted: Path, tmp_path: Path,
) -> None:
    out = tmp_path / "out.parquet"
    proc = start(big_input, out, tiny_weights)
    wait_for_parts(out, proc)
    proc.kill()
    proc.communicate(timeout=60)
    other = invoke(["embed", big_input, "-o", out, "--row-group-size", ROW_GROUP, "--levels", "fused", "--resume"],
                   tiny_weights)
    assert_one_line_error(other, 1, "cannot resume", "another input, weights or options")
    assert_ok(invoke(["embed", big_input, "-o", out, "--row-group-size", ROW_GROUP, "--workers", "0"], tiny_weights))
    assert_same_file(out, uninterrupted)
    assert tmp_leftovers(tmp_path) == []


def test_resume_without_an_unfinished_run_just_runs(big_input: Path, tiny_weights: Path, uninterrupted: Path,
                                                     tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    assert_ok(invoke(["embed", big_input, "-o", out, "--row-group-size", ROW_GROUP, "--workers", "0", "--resume"],
                     tiny_weights))
    assert_same_file(out, uninterrupted)


def test_resume_from_stdin_is_a_usage_error(tiny_weights: Path, tmp_path: Path) -> None:
    result = invoke(["embed", "-", "-o", tmp_path / "o.parquet", "--resume"], tiny_weights, input="CCO\n")
    assert_one_line_error(result, 2, "stdin")  # before any work


@pytest.fixture
def small_disk(tmp_path: Path):  # noqa: ANN201
    """A 96 KiB tmpfs (needs root and mount rights; skipped elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_full_disk_is_one_clear_error(small_disk: Path, big_input: Path, tiny_weights: Path) -> None:
    out = small_disk / "out.parquet"
    result = invoke(["embed", big_input, "-o", out, "--row-group-size", ROW_GROUP, "--workers", "0"], tiny_weights)
    assert_one_line_error(result, 1, "no space left on device", str(out))
    assert os.listdir(small_disk) == []  # partial row groups removed: the space is given back
