"""Keeping the main process's memory flat over millions of molecules.

Batches of ever-different shapes fragment glibc's heap: freed tensors leave holes that later
tensors do not fit, so an untrimmed heap keeps growing (the first full-MOSES run passed 2.16 GB by
110,000 molecules). malloc_trim hands the free pages back, but the next batch faults them back in.
Measured on 20,000 MOSES molecules, policies alternating (docs/DESIGN.md, "Memory"): trimming
after every batch peaked at 853 MiB and was the slowest (298-344 mol/s), every 8 batches 1,013 MiB
(332-416; but that peak creeps up over a long run), never 1,466 MiB (369-434; unbounded), and
this policy 1,260 MiB (407-424): trim only when the resident size has grown `headroom` past its
size after the first batch that follows the last trim (the batch working set faulted back in).
It trims rarely and bounds the peak by construction."""
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
