"""BRICS fragments, Bemis-Murcko scaffold atoms, and the canonical serialisation order."""
from __future__ import annotations

import numpy as np
from rdkit import Chem


def brics_fragments(mol: Chem.Mol, ranks: np.ndarray, bond_ends: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Fragment index per atom and fragment SMILES (no dummy atoms). bond_ends: m x 2, the atoms
    of bond k in row k.

    Fragments are the connected pieces left after cutting BRICS bonds (so salts give one fragment
    per component), numbered by the smallest canonical atom rank they contain: the numbering does
    not depend on how the input numbers its atoms. RDKit's C++ FragmentOnBRICSBonds finds the same
    bonds as the Python BRICS.FindBRICSBonds (checked equal on 20 k MOSES molecules) in 2/3 of the
    time, and GetMolFrags labels its pieces in C++. BRICS never cuts a ring bond, so the bonds kept
    are exactly those whose two atoms share a piece."""
    n = mol.GetNumAtoms()
    pieces = Chem.FragmentOnBRICSBonds(mol)  # original atoms keep their indices; dummies come after
    labels = np.empty(n, dtype=np.int64)
    min_rank = []
    for label, atoms in enumerate(Chem.GetMolFrags(pieces)):
        real = [a for a in atoms if a < n]
        labels[real] = label
        min_rank.append(ranks[real].min())
    frag_of_label = np.empty(len(min_rank), dtype=np.int64)
    frag_of_label[np.argsort(min_rank, kind="stable")] = np.arange(len(min_rank))
    frag_index = frag_of_label[labels]
    kept = np.flatnonzero(frag_index[bond_ends[:, 0]] == frag_index[bond_ends[:, 1]])
    return frag_index, _fragment_smiles(mol, frag_index, kept, len(min_rank))


def _fragment_smiles(mol: Chem.Mol, frag_index: np.ndarray, kept: np.ndarray, n_frags: int) -> list[str]:
    """Canonical SMILES of each fragment, as MolFragmentToSmiles writes it for that fragment's
    atoms alone (kept: the bond indices inside fragments): written in one call, the pieces come
    out '.'-separated in atom output order."""
    if not len(kept):  # no bond survives: every fragment is one atom
        return [Chem.MolFragmentToSmiles(mol, atomsToUse=[int(a)]) for a in np.argsort(frag_index, kind="stable")]
    text = Chem.MolFragmentToSmiles(mol, atomsToUse=list(range(mol.GetNumAtoms())), bondsToUse=kept.tolist())
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


def scaffold_atoms(in_ring: np.ndarray, bond_ends: np.ndarray) -> np.ndarray:
    """Boolean mask of Bemis-Murcko framework atoms (in_ring: per atom; bond_ends: m x 2): ring
    atoms plus the linkers between rings, found by pruning non-ring atoms of degree <= 1 until
    none is left. Pruning all such atoms at once reaches the same end as one at a time (removing
    an atom only lowers its neighbours' degrees). Empty for acyclic molecules."""
    n = len(in_ring)
    in_ring = np.asarray(in_ring, dtype=bool)
    if not in_ring.any():
        return np.zeros(n, dtype=bool)
    keep = np.ones(n, dtype=bool)
    while True:
        live = bond_ends[keep[bond_ends[:, 0]] & keep[bond_ends[:, 1]]]
        degree = np.bincount(live.ravel(), minlength=n)
        drop = keep & ~in_ring & (degree <= 1)
        if not drop.any():
            return keep
        keep &= ~drop
