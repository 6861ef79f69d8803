"""Topological proximity: the structural prior of the Graph-Mamba selective step."""
from __future__ import annotations

import numpy as np
from rdkit import Chem

MAX_HOPS = 3


def proximity(mol: Chem.Mol) -> tuple[np.ndarray, np.ndarray]:
    """Row-normalised A_ij = exp(-(d_ij - 1)) for 1 <= d_ij <= 3 (2-D topological distance), as a
    sparse list: index 2 x E (row i, column j) int64 and weight E float32. Atoms with no neighbour
    within 3 bonds (single atoms, lone ions) get an empty row."""
    d = Chem.GetDistanceMatrix(mol)
    near = (d >= 1) & (d <= MAX_HOPS)
    rows, cols = np.nonzero(near)
    w = np.exp(-(d[rows, cols] - 1.0))
    row_sum = np.zeros(mol.GetNumAtoms())
    np.add.at(row_sum, rows, w)
    w = w / row_sum[rows]
    return np.stack([rows, cols]).astype(np.int64), w.astype(np.float32)
