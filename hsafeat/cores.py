"""The CPUs this process may really use, for worker and thread counts.

`os.cpu_count()` counts the machine's CPUs. A process pinned to a subset (`taskset`, a batch
scheduler's cpuset) or held to a CPU quota (a container's `--cpus`, a Kubernetes limit, a
systemd CPUQuota) gets fewer, and more threads or workers than it gets only contend for them.
Standard library only: the fork server imports this."""
from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
_V1_CPU_DIRS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")  # where cgroup v1 mounts the cpu controller


def available_cores(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int:
    """The CPUs this process may run on (its affinity mask), capped by its cgroup CPU quota
    rounded up, never more than os.cpu_count() and at least 1."""
    total = os.cpu_count() or 1
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else total
    quota = cgroup_cpu_limit(cgroup_root, proc_cgroup)
    return max(1, min(total, allowed, quota if quota is not None else total))


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int | None:
    """CPUs allowed by the tightest CPU quota on this process's cgroup or its ancestors, as
    ceil(quota / period) and at least 1; None where there is no quota or no cgroup to read.
    Reads cgroup v2 (`cpu.max`) and v1 (`cpu.cfs_quota_us` / `cpu.cfs_period_us`) under `root`;
    `proc_cgroup` names the process's cgroups (a container's own cgroup is usually the root)."""
    v2_path, v1_path = _membership(proc_cgroup)
    limits = [_v2_limit(d) for d in _candidates(root, v2_path)]
    for name in _V1_CPU_DIRS:
        limits += [_v1_limit(d) for d in _candidates(root / name, v1_path)]
    found = [n for n in limits if n is not None]
    return min(found) if found else None


def _membership(proc_cgroup: Path) -> tuple[str, str]:
    """(cgroup v2 path, cgroup v1 cpu-controller path) from /proc/self/cgroup lines `id:controllers:path`."""
    v2 = v1 = "/"
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return v2, v1
    for line in lines:
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        hierarchy, controllers, path = fields
        if hierarchy == "0" and controllers == "":
            v2 = path
        elif "cpu" in controllers.split(","):
            v1 = path
    return v2, v1


def _candidates(base: Path, path: str) -> list[Path]:
    """base/path and each ancestor up to base itself: a quota anywhere above applies too. Where
    the path does not exist under base (a container sees only its own cgroup), base remains."""
    parts = [p for p in path.split("/") if p]
    return [base.joinpath(*parts[:i]) for i in range(len(parts), -1, -1)]


def _ceil_cpus(quota: int, period: int) -> int | None:
    return max(1, math.ceil(quota / period)) if quota > 0 and period > 0 else None


def _v2_limit(directory: Path) -> int | None:
    try:
        quota, period = (directory / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else _ceil_cpus(int(quota), int(period))
    except (OSError, ValueError):
        return None


def _v1_limit(directory: Path) -> int | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return _ceil_cpus(quota, period)  # quota -1: unlimited
