"""MolGraph: everything the encoder needs about one molecule, as numpy arrays."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from rdkit import Chem

from hsafeat.chem.features import ATOM_FEATURES, atom_features, bond_features
from hsafeat.chem.fragment_names import FragmentNames
from hsafeat.chem.fragments import brics_pieces, fragment_smiles, scaffold_atoms, serialisation_order
from hsafeat.chem.proximity import proximity

UNK_FRAGMENT = 0  # id 0 of every fragment vocabulary is UNK
IN_RING = list(ATOM_FEATURES).index("in_ring")


@dataclass
class MolGraph:
    x: np.ndarray            # n_atoms x n_atom_feats   int64 categories
    edge_index: np.ndarray   # 2 x n_edges              int64 (both directions)
    edge_attr: np.ndarray    # n_edges x n_bond_feats   int64 categories
    frag_index: np.ndarray   # n_atoms                  fragment of each atom (canonically numbered)
    frag_ids: np.ndarray     # n_frags                  vocabulary id of each fragment (0 = UNK)
    order: np.ndarray        # n_atoms                  atom indices in serialisation order
    prox_index: np.ndarray   # 2 x n_prox               proximity pairs (row, column)
    prox_weight: np.ndarray  # n_prox                   row-normalised proximity weights
    scaffold: np.ndarray     # n_atoms bool             Bemis-Murcko framework atoms
    # SMILES branch only (chem/smiles_tokens.py): ids of the canonical SMILES, CLS first; empty
    # unless the weights read them (featurize's token_len), so other paths never pay for them
    smiles_tokens: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def n_atoms(self) -> int:
        return int(self.x.shape[0])


def canonical_ranks(mol: Chem.Mol) -> np.ndarray:
    return np.asarray(list(Chem.CanonicalRankAtoms(mol, breakTies=True)), dtype=np.int64)


def mol_to_graph(
    mol: Chem.Mol, vocab: dict[str, int] | None = None, stereo: bool = True, names: FragmentNames | None = None,
) -> MolGraph:
    """Featurize one sanitized molecule. Fragments missing from vocab map to UNK. Two shortcuts
    that leave the graph the same, for callers that read the SMILES: stereo=False when it has no
    stereo marks (parse.may_carry_stereo), so the features skip asking RDKit for them; names,
    fragment names remembered from earlier molecules (only where fragment_names.keyable)."""
    return mol_to_graph_and_fragments(mol, vocab, stereo, names)[0]


def mol_to_graph_and_fragments(
    mol: Chem.Mol, vocab: dict[str, int] | None = None, stereo: bool = True, names: FragmentNames | None = None,
) -> tuple[MolGraph, list[str]]:
    """mol_to_graph, also returning the BRICS fragment SMILES (for building vocabularies)."""
    ranks = canonical_ranks(mol)
    x = atom_features(mol, ranks, stereo)
    edge_index, edge_attr = bond_features(mol, stereo)
    bond_ends = edge_index[:, ::2].T                 # m x 2: bond k's atoms (edge 2k)
    frag_index, kept = brics_pieces(mol, ranks, bond_ends)
    frag_smiles = (names.smiles(mol, x, edge_attr, bond_ends, ranks, frag_index, kept) if names is not None
                   else fragment_smiles(mol, frag_index, kept, bond_ends))
    degree = np.bincount(edge_index[0], minlength=mol.GetNumAtoms())
    prox_index, prox_weight = proximity(mol)
    vocab = vocab or {}
    graph = MolGraph(
        x=x,
        edge_index=edge_index,
        edge_attr=edge_attr,
        frag_index=frag_index,
        frag_ids=np.asarray([vocab.get(s, UNK_FRAGMENT) for s in frag_smiles], dtype=np.int64),
        order=serialisation_order(frag_index, degree, ranks),
        prox_index=prox_index,
        prox_weight=prox_weight,
        scaffold=scaffold_atoms(x[:, IN_RING] == 1, bond_ends),
    )
    return graph, frag_smiles
