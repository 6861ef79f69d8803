"""Inference batches by size bucket: the contract that makes embeddings byte-identical.

CPU kernels give the same bits for the same problem shape, but the shape a molecule meets is
set by its batch: the padded width (attention keys, softmax and scan lengths) and, for tiny
matrices, the number of rows (MKL switches kernels below ~16 rows; measured with torch 2.13:
a 256-wide Linear gives other bits for up to 15 rows). So inference

  * batches only molecules of one bucket, padded to the bucket's widths, which depend on the
    molecule alone (its atom and fragment counts rounded up), and
  * never runs fewer than MIN_ROWS rows through a matrix product: short batches are topped up
    with repeats of their own molecules, whose outputs are dropped.

Buckets also bound padding: within a bucket a molecule is padded by at most ATOM_STEP - 1 atoms.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

ATOM_STEP = 4
FRAG_STEP = 8
MIN_ROWS = 16


def atom_width(n_atoms: int) -> int:
    return max(ATOM_STEP, -(-n_atoms // ATOM_STEP) * ATOM_STEP)


def frag_width(n_frags: int) -> int:
    return max(FRAG_STEP, -(-n_frags // FRAG_STEP) * FRAG_STEP)


@dataclass
class BatchPlan:
    members: np.ndarray   # positions of the molecules to run, repeats included
    n_real: int           # the first n_real members are distinct; the rest are top-up repeats
    width: int            # atom width L of the bucket
    frag_width: int


def plan_batches(n_atoms: np.ndarray, n_frags: np.ndarray, batch_size: int) -> list[BatchPlan]:
    """Split molecules (given by their atom and fragment counts) into bucket-pure batches of at
    most batch_size distinct molecules, each topped up to MIN_ROWS members."""
    n_atoms, n_frags = np.asarray(n_atoms, dtype=np.int64), np.asarray(n_frags, dtype=np.int64)
    widths = np.asarray([atom_width(int(n)) for n in n_atoms], dtype=np.int64)
    fwidths = np.asarray([frag_width(int(n)) for n in n_frags], dtype=np.int64)
    order = np.lexsort((np.arange(len(n_atoms)), n_atoms, fwidths, widths))
    key = np.stack([widths[order], fwidths[order]], axis=1)
    bounds = np.flatnonzero((key[1:] != key[:-1]).any(axis=1)) + 1
    plans: list[BatchPlan] = []
    for group in np.split(order, bounds) if len(order) else []:
        for lo in range(0, len(group), batch_size):
            members = group[lo:lo + batch_size]
            n_real = len(members)
            if n_real < MIN_ROWS:
                members = np.resize(members, MIN_ROWS)
            plans.append(BatchPlan(members, n_real, int(widths[group[0]]), int(fwidths[group[0]])))
    return plans


def top_up(index: torch.Tensor) -> torch.Tensor:
    """Row indices topped up to MIN_ROWS by cycling (for row subsets inside the encoder)."""
    n = index.numel()
    if n == 0 or n >= MIN_ROWS:
        return index
    return index.repeat(-(-MIN_ROWS // n))[:MIN_ROWS]
