"""Categorical atom and bond features. Every feature has an "other" slot, so unusual atoms
(P, I, B, metals, charges, radicals) never crash; the atom-number feature also has a [MASK] slot
used in pretraining. The spec is part of the weights' config: changing it means new weights."""
from __future__ import annotations

import numpy as np
from rdkit import Chem

HT = Chem.rdchem.HybridizationType
CT = Chem.rdchem.ChiralType
BT = Chem.rdchem.BondType
BS = Chem.rdchem.BondStereo

FEATURE_SPEC_VERSION = "hsafeat-features-1"

# Atomic numbers 0 (wildcard) to 118 index themselves; then "other", then [MASK].
N_ELEMENTS = 119
ATOM_OTHER = N_ELEMENTS
ATOM_MASK = N_ELEMENTS + 1

CHIRALITY = [CT.CHI_UNSPECIFIED, CT.CHI_TETRAHEDRAL_CW, CT.CHI_TETRAHEDRAL_CCW]
DEGREES = [0, 1, 2, 3, 4, 5, 6]
CHARGES = [-2, -1, 0, 1, 2]
NUM_HS = [0, 1, 2, 3, 4]
HYBRIDIZATION = [HT.S, HT.SP, HT.SP2, HT.SP3, HT.SP3D, HT.SP3D2]
RADICALS = [0, 1, 2]

BOND_TYPES = [BT.SINGLE, BT.DOUBLE, BT.TRIPLE, BT.AROMATIC]
BOND_OTHER = len(BOND_TYPES)  # dative, zero-order, ...
BOND_MASK = len(BOND_TYPES) + 1
BOND_STEREO = [BS.STEREONONE, BS.STEREOZ, BS.STEREOE, BS.STEREOCIS, BS.STEREOTRANS, BS.STEREOANY]

# name -> number of categories (including "other", and [MASK] where it exists)
ATOM_FEATURES: dict[str, int] = {
    "atomic_num": N_ELEMENTS + 2,
    "chirality": len(CHIRALITY) + 1,
    "degree": len(DEGREES) + 1,
    "formal_charge": len(CHARGES) + 1,
    "num_hs": len(NUM_HS) + 1,
    "hybridization": len(HYBRIDIZATION) + 1,
    "radical_electrons": len(RADICALS) + 1,
    "aromatic": 2,
    "in_ring": 2,
}
BOND_FEATURES: dict[str, int] = {
    "bond_type": len(BOND_TYPES) + 2,
    "conjugated": 2,
    "in_ring": 2,
    "stereo": len(BOND_STEREO) + 1,
}


def _index(values: list, value: object) -> int:
    """Position of value in values, or the "other" slot right after them."""
    try:
        return values.index(value)
    except ValueError:
        return len(values)


def _slots(values: list) -> dict:
    return {v: i for i, v in enumerate(values)}


# value -> category, for the hot loops (a dict lookup instead of list.index + try)
_DEGREE, _CHARGE, _NUM_HS = _slots(DEGREES), _slots(CHARGES), _slots(NUM_HS)
_HYBRIDIZATION, _RADICAL = _slots(HYBRIDIZATION), _slots(RADICALS)
_BOND_TYPE, _BOND_STEREO = _slots(BOND_TYPES), _slots(BOND_STEREO)
_CHIRAL_TAGS = (CT.CHI_TETRAHEDRAL_CW, CT.CHI_TETRAHEDRAL_CCW)


def canonical_chirality(atom: Chem.Atom, ranks: np.ndarray) -> int:
    """The chirality category with CW/CCW taken relative to the neighbours sorted by canonical
    rank. RDKit's tag is relative to the order of the atom's bonds, which follows the SMILES
    text: the same stereocentre spelled two ways can carry opposite tags."""
    tag = atom.GetChiralTag()
    if tag not in (CT.CHI_TETRAHEDRAL_CW, CT.CHI_TETRAHEDRAL_CCW):
        return _index(CHIRALITY, tag)
    order = [int(ranks[b.GetOtherAtomIdx(atom.GetIdx())]) for b in atom.GetBonds()]
    inversions = sum(a > b for i, a in enumerate(order) for b in order[i + 1:])
    if inversions % 2:
        tag = CT.CHI_TETRAHEDRAL_CCW if tag == CT.CHI_TETRAHEDRAL_CW else CT.CHI_TETRAHEDRAL_CW
    return _index(CHIRALITY, tag)


def atom_features(mol: Chem.Mol, ranks: np.ndarray, stereo: bool = True) -> np.ndarray:
    """n_atoms x len(ATOM_FEATURES) int64 category indices (ranks: canonical atom ranks).
    Atoms are fetched by index: RDKit's Python-level atom sequence costs more than the features.
    stereo=False asserts no atom has a chiral tag (see parse.may_carry_stereo): GetChiralTag,
    like every RDKit accessor returning an enum, costs ~2.4 us a call."""
    rows = []
    for i in range(mol.GetNumAtoms()):
        atom = mol.GetAtomWithIdx(i)
        z = atom.GetAtomicNum()
        tag = atom.GetChiralTag() if stereo else CT.CHI_UNSPECIFIED
        rows.append((
            z if 0 <= z < N_ELEMENTS else ATOM_OTHER,
            canonical_chirality(atom, ranks) if tag in _CHIRAL_TAGS else (0 if tag == CT.CHI_UNSPECIFIED else len(CHIRALITY)),
            _DEGREE.get(atom.GetDegree(), len(DEGREES)),
            _CHARGE.get(atom.GetFormalCharge(), len(CHARGES)),
            _NUM_HS.get(atom.GetTotalNumHs(), len(NUM_HS)),
            _HYBRIDIZATION.get(atom.GetHybridization(), len(HYBRIDIZATION)),
            _RADICAL.get(atom.GetNumRadicalElectrons(), len(RADICALS)),
            int(atom.GetIsAromatic()),
            int(atom.IsInRing()),
        ))
    return np.asarray(rows, dtype=np.int64).reshape(-1, len(ATOM_FEATURES))


def bond_features(mol: Chem.Mol, stereo: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Directed edges: edge_index 2 x 2m and edge_attr 2m x len(BOND_FEATURES), both int64;
    bond k gives edges 2k (begin -> end) and 2k + 1 (end -> begin). stereo=False asserts every
    bond's stereo is STEREONONE and skips asking for it."""
    ends, attrs = [], []
    for k in range(mol.GetNumBonds()):
        bond = mol.GetBondWithIdx(k)
        ends.append((bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()))
        attrs.append((
            _BOND_TYPE.get(bond.GetBondType(), BOND_OTHER),
            int(bond.GetIsConjugated()),
            int(bond.IsInRing()),
            _BOND_STEREO.get(bond.GetStereo(), len(BOND_STEREO)) if stereo else 0,
        ))
    pairs = np.asarray(ends, dtype=np.int64).reshape(-1, 2)
    edge_index = np.stack([pairs, pairs[:, ::-1]], axis=1).reshape(-1, 2).T.copy()    # 2 x 2m
    edge_attr = np.repeat(np.asarray(attrs, dtype=np.int64).reshape(-1, len(BOND_FEATURES)), 2, axis=0)
    return edge_index, edge_attr


def feature_spec() -> dict:
    """What goes into config.json so weights can check they match the featurizer."""
    return {"version": FEATURE_SPEC_VERSION, "atom": dict(ATOM_FEATURES), "bond": dict(BOND_FEATURES)}
