"""The featurization shortcuts leave every graph as it was: skipping the stereo accessors for
SMILES without stereo marks, and fragment names taken from memory (hsafeat/chem/fragment_names.py)."""
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem

from hsafeat.chem import fragment_names
from hsafeat.chem.fragment_names import FragmentNames, keyable
from hsafeat.chem.graph import mol_to_graph_and_fragments
from hsafeat.chem.parse import may_carry_stereo, parse_smiles

DRUGS = [line.split()[0] for line in (Path(__file__).parents[1] / "data" / "drugs.smi").read_text().splitlines()
         if line.strip() and not line.startswith("#")]
ODD = [  # charges, radicals, [nH], salts, one-atom fragments, atoms outside the plain categories
    "C[N+](C)(C)CCOC(=O)c1ccccc1.[Cl-]", "[CH2]CCOc1ccc[nH]1", "c1ccc2[nH]ccc2c1OCCN1CCOCC1",
    "[Na+].[O-]C(=O)c1ccccc1NC(=O)C1CC1", "O=S(=O)(O)c1ccc(Nc2ncccn2)cc1", "[Fe+3].[Cl-].[Cl-].[Cl-]",
    "CC(C)(C)OC(=O)N1CCC(CC1)Oc1ccc(cc1)C(F)(F)F", "C[Si](C)(C)OCCOc1ccccc1", "O=[N+]([O-])c1ccc(OCCBr)cc1",
    "B(O)(O)c1ccc(OCC2CC2)cc1", "c1ccccc1->[Fe]", "[SH6]",
]


def renumbered(smiles: str, seed: int) -> Chem.Mol:
    mol = Chem.MolFromSmiles(smiles)
    perm = np.random.default_rng(seed).permutation(mol.GetNumAtoms()).tolist()
    return Chem.RenumberAtoms(mol, perm)


def same_graph(a, b) -> bool:  # noqa: ANN001
    return all(np.array_equal(getattr(a, k), getattr(b, k)) for k in a.__dataclass_fields__)


@pytest.mark.parametrize("smiles,marks", [
    ("CCO", False), ("c1ccccc1O", False), ("C[C@H](N)O", True), ("F/C=C/F", True), ("F\\C=C\\F", True),
    ("CC |(0,0,;1,0,)|", True),
])
def test_stereo_marks_are_seen(smiles, marks):
    assert may_carry_stereo(smiles) is marks


@pytest.mark.parametrize("smiles,keyed", [
    ("CCO", True), ("[NH4+].[Cl-]", True), ("c1cc[nH]c1", True), ("C[C@H](N)O", False), ("F/C=C/F", False),
    ("[13CH4]", False), ("[CH3:1]C", False), ("CC |$;R1$|", False),
])
def test_keyable_leaves_out_what_keys_cannot_hold(smiles, keyed):
    assert keyable(smiles) is keyed


def test_shortcuts_give_the_same_graphs_and_fragment_names():
    names = FragmentNames()
    molecules = [(s, Chem.MolFromSmiles(s)) for s in DRUGS + ODD]
    # the same molecules again with their atoms renumbered: fragments come back in other atom orders
    molecules += [(s, renumbered(s, seed)) for seed in (1, 2) for s in DRUGS + ODD if keyable(s)]
    assert len(molecules) > 100
    for smiles, mol in molecules:
        reference, reference_names = mol_to_graph_and_fragments(mol)
        graph, graph_names = mol_to_graph_and_fragments(
            mol, None, may_carry_stereo(smiles), names if keyable(smiles) else None)
        assert graph_names == reference_names, smiles
        assert same_graph(graph, reference), smiles
    assert len(names.known) > 20


def test_remembered_names_skip_the_writer(monkeypatch):
    calls = []
    original = fragment_names.fragment_smiles
    monkeypatch.setattr(fragment_names, "fragment_smiles", lambda *a: calls.append(a) or original(*a))
    names = FragmentNames()
    first = mol_to_graph_and_fragments(parse_smiles("CC(=O)Nc1ccc(OCC2CC2)cc1").mol, names=names)[1]
    assert len(calls) == 1
    assert mol_to_graph_and_fragments(parse_smiles("CC(=O)Nc1ccc(OCC2CC2)cc1").mol, names=names)[1] == first
    assert len(calls) == 1  # every name from memory
    # the same fragments in another molecule and another atom order: nothing left to write
    again = mol_to_graph_and_fragments(renumbered("CC(=O)Nc1ccc(OCC2CC2)cc1", 3), names=names)[1]
    assert sorted(again) == sorted(first)
    assert len(calls) == 1 or set(calls[1][4]) < set(range(len(first)))  # at most a renumbered few


def test_memory_starts_afresh_when_full():
    names = FragmentNames(capacity=4)
    for smiles in DRUGS[:10]:
        fragments = mol_to_graph_and_fragments(parse_smiles(smiles).mol, names=names)[1]
        assert len(names.known) <= max(4, len(fragments))  # one molecule's names always stay
