"""Keeping the main process's memory flat over millions of molecules.

Batches of ever-different shapes fragment glibc's heap: freed tensors leave holes that later,
larger tensors do not fit, so the heap keeps growing (measured: 0.5 -> 1.0 GB over 25,000
molecules, and past 2 GB by 110,000, untrimmed). malloc_trim hands the free pages back, but every
page it returns is faulted back in by the next batch, and page faults are dear on small VMs:
trimming after every batch held the process at 0.93 GB and cost 44 % of the throughput (90,000
MOSES molecules, BENCHMARKS.md "Memory"). So the heap is trimmed only when the resident size has
grown `headroom` beyond its size after the first batch that follows the last trim (the batch
working set faulted back in): rarely, and never far above that floor."""
from __future__ import annotations

import ctypes
import ctypes.util
import os

HEADROOM = 256 << 20  # bytes of growth over the floor before the next trim
FALLBACK_EVERY = 8    # batches between trims where the resident size cannot be read


def _libc_malloc_trim():  # noqa: ANN202
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
        return None


_MALLOC_TRIM = _libc_malloc_trim()
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int | None:
    """This process's resident set size, or None where /proc is missing (not Linux)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


def release_free_memory() -> None:
    """Hand the heap's free pages back to the OS (glibc only; elsewhere nothing to do)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class HeapTrimmer:
    """Call after_batch() after each encoder batch; it trims the heap when it has grown too far."""

    def __init__(self, headroom: int = HEADROOM) -> None:
        self.headroom = headroom
        self.floor: int | None = None   # resident size after the first batch since the last trim
        self.batches = 0
        self.trims = 0

    def after_batch(self) -> None:
        if _MALLOC_TRIM is None:
            return
        self.batches += 1
        rss = resident_bytes()
        if rss is None:
            if self.batches % FALLBACK_EVERY == 0:
                self._trim()
            return
        if self.floor is None:
            self.floor = rss
        elif rss > self.floor + self.headroom:
            self._trim()
            self.floor = None

    def _trim(self) -> None:
        release_free_memory()
        self.trims += 1
