"""BRICS fragments, Bemis-Murcko scaffold atoms, and the canonical serialisation order."""
from __future__ import annotations

import numpy as np
from rdkit import Chem
from rdkit.Chem import BRICS


def _components(n_atoms: int, pairs: list[tuple[int, int]]) -> np.ndarray:
    """Connected-component label per atom (union-find over the kept bonds)."""
    parent = list(range(n_atoms))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i, j in pairs:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    return np.asarray([find(a) for a in range(n_atoms)], dtype=np.int64)


def brics_fragments(mol: Chem.Mol, ranks: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Fragment index per atom and fragment SMILES (no dummy atoms).

    Fragments are the connected pieces left after cutting BRICS bonds (so salts give one fragment
    per component), numbered by the smallest canonical atom rank they contain: the numbering does
    not depend on how the input numbers its atoms."""
    cut = {tuple(sorted(b)) for b, _ in BRICS.FindBRICSBonds(mol)}
    kept = [
        (b.GetBeginAtomIdx(), b.GetEndAtomIdx())
        for b in mol.GetBonds()
        if tuple(sorted((b.GetBeginAtomIdx(), b.GetEndAtomIdx()))) not in cut
    ]
    labels = _components(mol.GetNumAtoms(), kept)
    roots = np.unique(labels)
    min_rank = np.asarray([ranks[labels == r].min() for r in roots])
    order = roots[np.argsort(min_rank, kind="stable")]
    frag_of_root = {int(r): k for k, r in enumerate(order)}
    frag_index = np.asarray([frag_of_root[int(r)] for r in labels], dtype=np.int64)
    smiles = [
        Chem.MolFragmentToSmiles(mol, atomsToUse=[int(a) for a in np.flatnonzero(frag_index == k)])
        for k in range(len(order))
    ]
    return frag_index, smiles


def serialisation_order(frag_index: np.ndarray, degree: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Atom indices sorted by (fragment, degree ascending, canonical rank): hubs come late in each
    fragment so they see the most context, and ties break canonically."""
    return np.lexsort((ranks, degree, frag_index)).astype(np.int64)


def scaffold_atoms(mol: Chem.Mol) -> np.ndarray:
    """Boolean mask of Bemis-Murcko framework atoms: ring atoms plus the linkers between rings,
    found by repeatedly pruning non-ring atoms of degree <= 1. Empty for acyclic molecules."""
    n = mol.GetNumAtoms()
    keep = np.ones(n, dtype=bool)
    in_ring = np.asarray([a.IsInRing() for a in mol.GetAtoms()], dtype=bool)
    if not in_ring.any():
        return np.zeros(n, dtype=bool)
    neighbours = [[nb.GetIdx() for nb in a.GetNeighbors()] for a in mol.GetAtoms()]
    changed = True
    while changed:
        changed = False
        for a in range(n):
            if keep[a] and not in_ring[a] and sum(keep[b] for b in neighbours[a]) <= 1:
                keep[a] = False
                changed = True
    return keep
