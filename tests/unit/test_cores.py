"""available_cores(): the CPUs a process may really use, from its affinity mask and its cgroup CPU
quota, read here from fake cgroup trees and from a really pinned subprocess."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hsafeat import cores


def cgroup_tree(root: Path, files: dict[str, str], membership: str = "0::/\n") -> tuple[Path, Path]:
    """A fake /sys/fs/cgroup under root, and a fake /proc/self/cgroup naming the process's cgroups."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    proc = root.parent / "proc-self-cgroup"
    proc.write_text(membership)
    return root, proc


@pytest.mark.parametrize(("cpu_max", "want"), [
    ("150000 100000\n", 2),   # 1.5 CPUs: rounded up
    ("200000 100000\n", 2),
    ("20000 100000\n", 1),    # a fifth of a CPU: still one
    ("max 100000\n", None),   # no quota
    ("garbage\n", None),
])
def test_cgroup_v2_quota(cpu_max: str, want: int | None, tmp_path: Path) -> None:
    root, proc = cgroup_tree(tmp_path / "cg", {"cpu.max": cpu_max})
    assert cores.cgroup_cpu_limit(root, proc) == want


def test_the_tightest_quota_on_the_cgroup_path_wins(tmp_path: Path) -> None:
    root, proc = cgroup_tree(tmp_path / "cg", {"cpu.max": "max 100000", "jobs/cpu.max": "300000 100000",
                                               "jobs/job7/cpu.max": "max 100000"}, "0::/jobs/job7\n")
    assert cores.cgroup_cpu_limit(root, proc) == 3
    (root / "jobs/job7/cpu.max").write_text("100000 100000")
    assert cores.cgroup_cpu_limit(root, proc) == 1


def test_a_container_sees_its_own_cgroup_as_the_root(tmp_path: Path) -> None:
    """/proc/self/cgroup names a host path that the container's mount does not have."""
    root, proc = cgroup_tree(tmp_path / "cg", {"cpu.max": "250000 100000"}, "0::/docker/0123abcd\n")
    assert cores.cgroup_cpu_limit(root, proc) == 3


@pytest.mark.parametrize("mount", ["cpu", "cpu,cpuacct"])
def test_cgroup_v1_quota(mount: str, tmp_path: Path) -> None:
    membership = f"4:memory:/x\n3:{mount}:/batch\n0::/\n"
    root, proc = cgroup_tree(tmp_path / "cg", {f"{mount}/batch/cpu.cfs_quota_us": "250000\n",
                                               f"{mount}/batch/cpu.cfs_period_us": "100000\n",
                                               f"{mount}/cpu.cfs_quota_us": "-1\n",
                                               f"{mount}/cpu.cfs_period_us": "100000\n"}, membership)
    assert cores.cgroup_cpu_limit(root, proc) == 3
    (root / mount / "batch" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cores.cgroup_cpu_limit(root, proc) is None


def test_no_cgroup_files_means_no_quota(tmp_path: Path) -> None:
    assert cores.cgroup_cpu_limit(tmp_path / "missing", tmp_path / "missing-proc") is None


def test_available_cores_takes_the_smallest_of_machine_affinity_and_quota(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    root, proc = cgroup_tree(tmp_path / "cg", {"cpu.max": "max 100000"})
    monkeypatch.setattr(cores.os, "cpu_count", lambda: 64)
    monkeypatch.setattr(cores.os, "sched_getaffinity", lambda _pid: set(range(64)), raising=False)
    assert cores.available_cores(root, proc) == 64
    monkeypatch.setattr(cores.os, "sched_getaffinity", lambda _pid: {3, 5, 7}, raising=False)
    assert cores.available_cores(root, proc) == 3
    (root / "cpu.max").write_text("150000 100000")
    assert cores.available_cores(root, proc) == 2
    (root / "cpu.max").write_text("8000000 100000")  # a quota above the machine's count
    monkeypatch.setattr(cores.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(cores.os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    assert cores.available_cores(root, proc) == 2


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this platform")
def test_a_process_pinned_to_one_cpu_counts_one(tmp_path: Path) -> None:
    one = min(os.sched_getaffinity(0))
    code = "from hsafeat.cores import available_cores; print(available_cores())"
    pinned = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            preexec_fn=lambda: os.sched_setaffinity(0, {one}))
    assert pinned.stdout.strip() == "1", pinned.stderr
