"""BRICS fragments, Bemis-Murcko scaffold atoms, and the canonical serialisation order."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from rdkit import Chem, rdBase


def brics_pieces(mol: Chem.Mol, ranks: np.ndarray, bond_ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fragment index per atom, and the bonds kept inside fragments. bond_ends: m x 2, the atoms
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
    return frag_index, kept


def fragment_smiles(
    mol: Chem.Mol, frag_index: np.ndarray, kept: np.ndarray, bond_ends: np.ndarray, wanted: list[int] | None = None,
) -> list[str]:
    """Canonical SMILES of each fragment (or of the `wanted` fragments, in that order; kept: the
    bond indices inside fragments). MolFragmentToSmiles writes them in one call, '.'-separated in
    atom output order; each piece is then spelt as canonical_name spells it."""
    if wanted is None:
        wanted = list(range(int(frag_index.max()) + 1))
        atoms, bonds = list(range(len(frag_index))), kept.tolist()
    else:
        chosen = np.zeros(int(frag_index.max()) + 1, dtype=bool)
        chosen[wanted] = True
        atoms = np.flatnonzero(chosen[frag_index]).tolist()
        bonds = kept[chosen[frag_index[bond_ends[kept, 0]]]].tolist()
    if not bonds:  # every wanted fragment is one atom (an empty bondsToUse would mean all bonds)
        return [canonical_name(Chem.MolFragmentToSmiles(mol, atomsToUse=[int(np.flatnonzero(frag_index == f)[0])]))
                for f in wanted]
    text = Chem.MolFragmentToSmiles(mol, atomsToUse=atoms, bondsToUse=bonds)
    written = [int(a) for a in mol.GetProp("_smilesAtomOutputOrder").strip("[],").split(",")]
    firsts = [frag_index[a] for k, a in enumerate(written) if k == 0 or frag_index[a] != frag_index[written[k - 1]]]
    smiles = text.split(".")
    if len(firsts) != len(wanted) or len(smiles) != len(wanted):
        raise ValueError("fragment SMILES could not be matched to fragments")
    by_fragment = dict(zip(firsts, smiles))
    return [canonical_name(by_fragment[f]) for f in wanted]


def vocabulary_index(vocab: list[str]) -> dict[str, int]:
    """Fragment name -> id, names in canonical_name's spelling. Vocabularies built before it
    (v1 to v2.2) can hold one fragment under two spellings: the lower id, the more frequent in
    the corpus, is kept (4 such pairs among v2.2's 2,048 names)."""
    index: dict[str, int] = {}
    for i, name in enumerate(vocab):
        index.setdefault(canonical_name(name), i)
    return index


@lru_cache(maxsize=1 << 16)
def canonical_name(smiles: str) -> str:
    """A fragment's SMILES as written from the fragment alone. MolFragmentToSmiles breaks some
    ties between atoms by their index in the whole molecule, so one fragment can come out two
    ways (15 of 5,039 MOSES and BBBP molecules changed fragment names when their atoms were
    renumbered: 'O=c1nc2ccccc2[nH]1' / 'O=c1[nH]c2ccccc2n1'), and it keeps stereo marks on atoms
    that are no stereocentre in the fragment. Read back unsanitized (a cut aromatic ring need not
    kekulize) and written again, every spelling gives the same string (docs/DESIGN.md, "Fragment
    names")."""
    with rdBase.BlockLogs():  # a name that does not parse ([UNK]) is kept as it is, silently
        mol = Chem.MolFromSmiles(smiles, sanitize=False)
    if mol is None:
        return smiles
    mol.UpdatePropertyCache(strict=False)
    Chem.FastFindRings(mol)
    return Chem.MolToSmiles(mol)


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
