"""BRICS fragments, Bemis-Murcko scaffold atoms, and the canonical serialisation order."""
from __future__ import annotations

import numpy as np
from rdkit import Chem


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
    not depend on how the input numbers its atoms. RDKit's C++ FragmentOnBRICSBonds finds the same
    bonds as the Python BRICS.FindBRICSBonds (checked equal on 20 k MOSES molecules) in 2/3 of the
    time, and one MolFragmentToSmiles call over all kept bonds writes every fragment at once."""
    n = mol.GetNumAtoms()
    pieces = Chem.FragmentOnBRICSBonds(mol)  # original atoms keep their indices; dummies come after
    kept = []
    for k in range(pieces.GetNumBonds()):
        b = pieces.GetBondWithIdx(k)
        i, j = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        if i < n and j < n:
            kept.append((i, j))
    labels = _components(n, kept)
    roots = np.unique(labels)
    min_rank = np.asarray([ranks[labels == r].min() for r in roots])
    order = roots[np.argsort(min_rank, kind="stable")]
    frag_of_root = np.zeros(n, dtype=np.int64)
    frag_of_root[order] = np.arange(len(order))
    frag_index = frag_of_root[labels]
    return frag_index, _fragment_smiles(mol, frag_index, kept, len(order))


def _fragment_smiles(mol: Chem.Mol, frag_index: np.ndarray, kept: list[tuple[int, int]], n_frags: int) -> list[str]:
    """Canonical SMILES of each fragment, as MolFragmentToSmiles writes it for that fragment's
    atoms alone: written in one call, the pieces come out '.'-separated in atom output order."""
    if not kept:  # no bond survives: every fragment is one atom
        return [Chem.MolFragmentToSmiles(mol, atomsToUse=[int(a)]) for a in np.argsort(frag_index, kind="stable")]
    bonds = [mol.GetBondBetweenAtoms(i, j).GetIdx() for i, j in kept]
    text = Chem.MolFragmentToSmiles(mol, atomsToUse=list(range(mol.GetNumAtoms())), bondsToUse=bonds)
    written = [int(a) for a in mol.GetProp("_smilesAtomOutputOrder").strip("[],").split(",")]
    firsts = [frag_index[a] for k, a in enumerate(written) if k == 0 or frag_index[a] != frag_index[written[k - 1]]]
    smiles = text.split(".")
    if len(firsts) != n_frags or len(smiles) != n_frags:
        raise ValueError("fragment SMILES could not be matched to fragments")
    out = [""] * n_frags
    for frag, piece in zip(firsts, smiles):
        out[int(frag)] = piece
    return out


def serialisation_order(frag_index: np.ndarray, degree: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Atom indices sorted by (fragment, degree ascending, canonical rank): hubs come late in each
    fragment so they see the most context, and ties break canonically."""
    return np.lexsort((ranks, degree, frag_index)).astype(np.int64)


def scaffold_atoms(mol: Chem.Mol) -> np.ndarray:
    """Boolean mask of Bemis-Murcko framework atoms: ring atoms plus the linkers between rings,
    found by repeatedly pruning non-ring atoms of degree <= 1. Empty for acyclic molecules."""
    n = mol.GetNumAtoms()
    keep = np.ones(n, dtype=bool)
    ring_info = mol.GetRingInfo()
    in_ring = np.asarray([ring_info.NumAtomRings(a) > 0 for a in range(n)], dtype=bool)
    if not in_ring.any():
        return np.zeros(n, dtype=bool)
    neighbours = [[nb.GetIdx() for nb in mol.GetAtomWithIdx(a).GetNeighbors()] for a in range(n)]
    changed = True
    while changed:
        changed = False
        for a in range(n):
            if keep[a] and not in_ring[a] and sum(keep[b] for b in neighbours[a]) <= 1:
                keep[a] = False
                changed = True
    return keep
