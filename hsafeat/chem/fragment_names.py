"""Fragment SMILES remembered across molecules. Writing them (`MolFragmentToSmiles`) costs
~0.3 ms a molecule, a sixth of a featurization worker's time, yet a library is built from few
distinct BRICS fragments: after 20,000 MOSES molecules 96 % of fragments had been met before.

A fragment's key describes it exactly: its atoms sorted by the molecule's canonical rank, each
with what the SMILES writer reads of it (element, degree in the molecule, charge, hydrogens,
radicals, aromaticity), and its bonds between those positions with their types. Equal keys are
the same labelled graph, so they have the same canonical SMILES; the key is not canonical itself
(the same fragment can come with its atoms in another order), which costs a miss, never a wrong
name. Molecules whose SMILES can carry what the key leaves out (stereo, isotopes, atom maps), or
with an atom or bond in an "other" category, are written directly."""
from __future__ import annotations

import re

import numpy as np
from rdkit import Chem

from hsafeat.chem.features import (
    ATOM_FEATURES,
    ATOM_OTHER,
    BOND_FEATURES,
    BOND_OTHER,
    CHARGES,
    DEGREES,
    NUM_HS,
    RADICALS,
)
from hsafeat.chem.fragments import fragment_smiles

_KEY_FEATURES = ("atomic_num", "degree", "formal_charge", "num_hs", "radical_electrons", "aromatic")
_ATOM_COLUMNS = np.array([list(ATOM_FEATURES).index(name) for name in _KEY_FEATURES])
# per key column, the first category that is not a plain value ("other"); aromatic has none
_ATOM_OTHER = np.array([ATOM_OTHER, len(DEGREES), len(CHARGES), len(NUM_HS), len(RADICALS), 2])
_BOND_TYPE = list(BOND_FEATURES).index("bond_type")
_BOND_CODES = 8  # > number of bond-type categories
# stereo marks, CXSMILES extensions, and bracket atoms with an isotope ([13C]) or an atom map ([C:1])
_NOT_KEYED = re.compile(r"[@/\\|]|\[\d|\[[^\]]*:")


def keyable(smiles: str) -> bool:
    """Whether a molecule read from this SMILES may take its fragment names from the memory."""
    return _NOT_KEYED.search(smiles) is None


class FragmentNames:
    """Fragment SMILES by fragment key. Holds at most `capacity` names (or one molecule's, if
    more): a molecule that would overflow it empties it first."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self.known: dict[tuple[bytes, bytes], str] = {}

    def smiles(
        self, mol: Chem.Mol, x: np.ndarray, edge_attr: np.ndarray, bond_ends: np.ndarray, ranks: np.ndarray,
        frag_index: np.ndarray, kept: np.ndarray,
    ) -> list[str]:
        """fragment_smiles(mol, frag_index, kept, bond_ends), from memory where it can.
        x, edge_attr: the molecule's atom and bond features (edge 2k is bond k)."""
        atoms = x[:, _ATOM_COLUMNS]
        bond_types = edge_attr[0::2, _BOND_TYPE]
        if not len(kept) or (atoms >= _ATOM_OTHER).any() or (bond_types >= BOND_OTHER).any():
            return fragment_smiles(mol, frag_index, kept, bond_ends)
        keys = self._keys(atoms, bond_types, bond_ends, ranks, frag_index, kept)
        names = [self.known.get(key) for key in keys]
        missing = [f for f, name in enumerate(names) if name is None]
        if missing:
            if len(self.known) + len(missing) > self.capacity:
                self.known.clear()
            for f, name in zip(missing, fragment_smiles(mol, frag_index, kept, bond_ends, missing)):
                names[f] = self.known[keys[f]] = name
        return names  # type: ignore[return-value]

    @staticmethod
    def _keys(
        atoms: np.ndarray, bond_types: np.ndarray, bond_ends: np.ndarray, ranks: np.ndarray,
        frag_index: np.ndarray, kept: np.ndarray,
    ) -> list[tuple[bytes, bytes]]:
        n = len(frag_index)
        n_frags = int(frag_index.max()) + 1
        order = np.argsort(frag_index * n + ranks)                # atoms by fragment, then canonical rank
        ends = np.cumsum(np.bincount(frag_index, minlength=n_frags))
        position = np.empty(n, dtype=np.int64)                     # an atom's place within its fragment
        position[order] = np.arange(n)
        position -= np.concatenate(([0], ends[:-1]))[frag_index]
        atom_bytes = atoms[order].astype(np.uint8).tobytes()
        # bond code (fragment, lower position, higher position, type), sorted: fragments' bonds are contiguous
        first, second = position[bond_ends[kept, 0]], position[bond_ends[kept, 1]]
        per_fragment = n * n * _BOND_CODES
        codes = np.sort(frag_index[bond_ends[kept, 0]] * per_fragment
                        + (np.minimum(first, second) * n + np.maximum(first, second)) * _BOND_CODES + bond_types[kept])
        bond_ends_at = np.searchsorted(codes, np.arange(1, n_frags + 1) * per_fragment).tolist()
        bond_bytes = (codes % per_fragment).astype(np.uint32).tobytes()
        width = len(_KEY_FEATURES)
        keys, atom_start, bond_start = [], 0, 0
        for atom_end, bond_end in zip(ends.tolist(), bond_ends_at):
            keys.append((atom_bytes[atom_start * width:atom_end * width], bond_bytes[bond_start * 4:bond_end * 4]))
            atom_start, bond_start = atom_end, bond_end
        return keys
