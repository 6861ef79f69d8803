"""Inference batches by size bucket: the contract that makes embeddings byte-identical.

CPU kernels give the same bits for the same problem shape, but the shape a molecule meets is
set by its batch: the padded width (attention keys, softmax and scan lengths) and, for tiny
matrices, the number of rows (MKL switches kernels below ~16 rows; measured with torch 2.13:
a 256-wide Linear gives other bits for up to 15 rows). So inference

  * batches only molecules of one bucket, padded to the bucket's widths, which depend on the
    molecule alone (its atom and fragment counts rounded up), and
  * never runs fewer than MIN_ROWS rows through a matrix product. Products whose rows are atoms
    (the GNN) get them from a batch with at least MIN_ROWS atoms: only batches of tiny molecules
    are topped up with repeats. Products whose rows are molecules or (level, molecule) pairs
    (HAP gate and projectors, motif attention, scaffold context, readout) top up their own rows
    inside the encoder (`top_up`, `run_topped_up`): a few pooled vectors, not whole molecules.
    Topping up whole batches to 16 molecules cost up to 16x for a large molecule alone in its
    bucket (2x on the 5 % largest drug-like molecules, measured in plan_batches' rows).

Buckets also bound padding: within a bucket a molecule is padded by at most ATOM_STEP - 1 atoms.
Weights with the SMILES branch (nn/smiles_branch.py) also bucket by token count (rounded up to
TOKEN_STEP): the self-attention over the tokens reduces over the padded token width.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

ATOM_STEP = 4
FRAG_STEP = 8
TOKEN_STEP = 16   # SMILES tokens (branch only); 16 also keeps B x S >= MIN_ROWS rows in its products
MIN_ROWS = 16


def atom_width(n_atoms: int) -> int:
    return max(ATOM_STEP, -(-n_atoms // ATOM_STEP) * ATOM_STEP)


def frag_width(n_frags: int) -> int:
    return max(FRAG_STEP, -(-n_frags // FRAG_STEP) * FRAG_STEP)


def token_width(n_tokens: int) -> int:
    return max(TOKEN_STEP, -(-n_tokens // TOKEN_STEP) * TOKEN_STEP)


@dataclass
class BatchPlan:
    members: np.ndarray   # positions of the molecules to run, repeats included
    n_real: int           # the first n_real members are distinct; the rest are top-up repeats
    width: int            # atom width L of the bucket
    frag_width: int
    token_width: int | None = None   # SMILES token width (branch only)


def plan_batches(n_atoms: np.ndarray, n_frags: np.ndarray, batch_size: int,
                 n_tokens: np.ndarray | None = None) -> list[BatchPlan]:
    """Split molecules (given by their atom and fragment counts, and SMILES token counts for
    weights with the SMILES branch) into bucket-pure batches of at most batch_size distinct
    molecules; a batch with fewer than MIN_ROWS atoms in all is topped up with repeats of its
    molecules until it has them."""
    n_atoms, n_frags = np.asarray(n_atoms, dtype=np.int64), np.asarray(n_frags, dtype=np.int64)
    widths = np.asarray([atom_width(int(n)) for n in n_atoms], dtype=np.int64)
    fwidths = np.asarray([frag_width(int(n)) for n in n_frags], dtype=np.int64)
    twidths = (np.zeros_like(widths) if n_tokens is None
               else np.asarray([token_width(int(n)) for n in np.asarray(n_tokens)], dtype=np.int64))
    order = np.lexsort((np.arange(len(n_atoms)), n_atoms, twidths, fwidths, widths))
    key = np.stack([widths[order], fwidths[order], twidths[order]], axis=1)
    bounds = np.flatnonzero((key[1:] != key[:-1]).any(axis=1)) + 1
    plans: list[BatchPlan] = []
    for group in np.split(order, bounds) if len(order) else []:
        for lo in range(0, len(group), batch_size):
            members = group[lo:lo + batch_size]
            n_real = len(members)
            atoms = int(n_atoms[members].sum())
            if atoms < MIN_ROWS:  # only tiny molecules; repeats of a few atoms each
                members = np.resize(members, n_real * -(-MIN_ROWS // max(atoms, 1)))
            plans.append(BatchPlan(members, n_real, int(widths[group[0]]), int(fwidths[group[0]]),
                                   None if n_tokens is None else int(twidths[group[0]])))
    return plans


def run_topped_up(fn: Callable[..., torch.Tensor], *rows: torch.Tensor) -> torch.Tensor:
    """fn over tensors whose first dimension is rows (molecules), run on at least MIN_ROWS rows
    (cycled repeats, outputs cut back): the same kernels, so the same bits, as in a full batch."""
    n = rows[0].shape[0]
    if n >= MIN_ROWS:
        return fn(*rows)
    index = top_up(torch.arange(n, device=rows[0].device))
    return fn(*(x.index_select(0, index) for x in rows))[:n]


def top_up(index: torch.Tensor) -> torch.Tensor:
    """Row indices topped up to MIN_ROWS by cycling (for row subsets inside the encoder)."""
    n = index.numel()
    if n == 0 or n >= MIN_ROWS:
        return index
    return index.repeat(-(-MIN_ROWS // n))[:MIN_ROWS]
