import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem.Scaffolds import MurckoScaffold

from hsafeat.chem import mol_to_graph, parse_smiles
from hsafeat.chem.features import ATOM_FEATURES, ATOM_OTHER, BOND_FEATURES, BOND_OTHER
from hsafeat.chem.fragments import canonical_name, scaffold_atoms, vocabulary_index
from hsafeat.chem.graph import mol_to_graph_and_fragments


@pytest.mark.parametrize("smiles,fragment", [
    ("", "empty"), ("   ", "empty"), ("C1CC", "unclosed ring"), ("CN(C)(C)(C)C", "valence"), ("Xyz", "syntax error"),
])
def test_invalid_smiles_give_reasons(smiles, fragment, capfd):
    parsed = parse_smiles(smiles)
    assert parsed.mol is None and not parsed.valid
    assert fragment in parsed.error
    assert capfd.readouterr().err == ""  # RDKit's console noise is silenced, its message kept


def test_atom_cap():
    parsed = parse_smiles("C" * 60, max_atoms=50)
    assert parsed.mol is None and "limit is 50" in parsed.error


def test_atom_cap_message_says_what_it_counts():
    """The cap counts the atoms of the graph, explicit (isotopic) hydrogens included: a perdeuterated
    C200 alkane has 200 heavy atoms but 602 atoms, and the message must not call them heavy."""
    smiles = "[2H]C([2H])([2H])" + "C([2H])([2H])" * 198 + "C([2H])([2H])[2H]"
    parsed = parse_smiles(smiles)
    assert parsed.mol is None
    assert parsed.error == "molecule has 602 atoms (explicit hydrogens included); the limit is 500"
    assert parse_smiles("C" * 500).valid and not parse_smiles("C" * 501).valid  # which molecules pass is unchanged


@pytest.mark.parametrize("smiles", [
    "C", "[Na+].[Cl-]", "[2H]C", "[CH3]", "*C", "c1ccccc1->[Fe]", "[Fe+2]", "C[C@H](N)C(=O)O", "F/C=C/F",
    "[U]", "O=P(O)(O)O", "OB(O)c1ccccc1",
])
def test_unusual_molecules_featurize(smiles):
    mol = parse_smiles(smiles).mol
    g = mol_to_graph(mol)
    for column, n_categories in enumerate(ATOM_FEATURES.values()):
        assert (g.x[:, column] >= 0).all() and (g.x[:, column] < n_categories).all()
    for column, n_categories in enumerate(BOND_FEATURES.values()):
        assert (g.edge_attr[:, column] < n_categories).all()
    assert sorted(g.order.tolist()) == list(range(mol.GetNumAtoms()))
    assert np.isfinite(g.prox_weight).all()


def test_other_slots():
    g = mol_to_graph(parse_smiles("c1ccccc1->[Fe]").mol)
    assert BOND_OTHER in g.edge_attr[:, 0]
    assert ATOM_OTHER == 119 and g.x[:, 0].max() == 26


def test_proximity_rows_are_normalised():
    g = mol_to_graph(parse_smiles("CCOc1ccccc1").mol)
    sums = np.zeros(g.n_atoms)
    np.add.at(sums, g.prox_index[0], g.prox_weight)
    assert np.allclose(sums, 1.0, atol=1e-6)
    assert (g.prox_weight > 0).all()


def test_single_atom_has_empty_proximity():
    g = mol_to_graph(parse_smiles("[Na+]").mol)
    assert g.prox_index.shape == (2, 0) and g.edge_index.shape == (2, 0)


def test_serialisation_order_keeps_fragments_contiguous_and_degree_sorted():
    g = mol_to_graph(parse_smiles("CC(=O)Nc1ccc(O)cc1").mol)
    frags = g.frag_index[g.order]
    assert (np.diff(frags) >= 0).all()
    degree = np.bincount(g.edge_index[0], minlength=g.n_atoms)[g.order]
    for f in np.unique(frags):
        assert (np.diff(degree[frags == f]) >= 0).all()


def _renumbered(smiles: str, seed: int) -> Chem.Mol:
    mol = Chem.MolFromSmiles(smiles)
    perm = np.random.default_rng(seed).permutation(mol.GetNumAtoms()).tolist()
    return Chem.RenumberAtoms(mol, perm)


@pytest.mark.parametrize("smiles", ["CC(=O)Nc1ccc(O)cc1", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C", "[Na+].[Cl-]"])
def test_serialised_sequence_is_invariant_to_atom_numbering(smiles):
    def sequence(mol):
        g = mol_to_graph(mol, {"CC(N)=O": 1})
        x = g.x[g.order]
        return x, g.frag_index[g.order], sorted(g.frag_ids.tolist())

    ref = sequence(Chem.MolFromSmiles(smiles))
    for seed in range(3):
        other = sequence(_renumbered(smiles, seed))
        assert np.array_equal(ref[0], other[0]) and np.array_equal(ref[1], other[1]) and ref[2] == other[2]


def _scaffold(smiles: str) -> np.ndarray:
    return mol_to_graph(Chem.MolFromSmiles(smiles)).scaffold


def test_scaffold_atoms():
    mask = _scaffold("CCc1ccccc1CCc1ccncc1")  # ethyl side chain pruned, linker kept
    assert mask.sum() == 14 and not mask[0] and not mask[1]
    assert not _scaffold("CCCO").any()
    assert not scaffold_atoms(np.zeros(3, dtype=bool), np.asarray([[0, 1], [1, 2]])).any()


@pytest.mark.parametrize("smiles", ["CC(C)Cc1ccc(cc1)C(C)C(=O)O", "O=C(O)c1ccccc1OC(C)=O",
                                    "c1ccc2c(c1)CCN2CCc1ccc(OCCN2CCCC2)cc1", "C1CC1.c1ccccc1CCCC1CCNCC1"])
def test_scaffold_atoms_match_rdkit_murcko(smiles):
    mol = Chem.MolFromSmiles(smiles)
    assert _scaffold(smiles).sum() == MurckoScaffold.GetScaffoldForMol(mol).GetNumAtoms()


@pytest.mark.parametrize("spellings", [
    ["C[C@H](N)C(=O)O", "N[C@@H](C)C(=O)O", "OC(=O)[C@@H](N)C", "[C@@H](C)(N)C(=O)O"],
    ["C[C@@H](O)CC", "CC[C@@H](C)O", "O[C@@H](CC)C"],
])
def test_chirality_feature_does_not_depend_on_spelling(spellings):
    def chirality_by_canonical_atom(smiles):
        mol = Chem.MolFromSmiles(smiles)
        g = mol_to_graph(mol)
        return g.x[g.order, 1].tolist()

    reference = chirality_by_canonical_atom(spellings[0])
    assert any(c in (1, 2) for c in reference)
    for s in spellings[1:]:
        assert chirality_by_canonical_atom(s) == reference, s


def test_enantiomers_differ():
    a = mol_to_graph(Chem.MolFromSmiles("C[C@H](N)C(=O)O"))
    b = mol_to_graph(Chem.MolFromSmiles("C[C@@H](N)C(=O)O"))
    assert a.x[a.order, 1].tolist() != b.x[b.order, 1].tolist()


def test_text_after_smiles_is_an_error():
    assert "unexpected text" in parse_smiles("CCO CCN").error
    assert parse_smiles("CCO |$a;b;c$|").valid


@pytest.mark.parametrize("smiles", [  # RDKit's fragment writer spelt these fragments two ways by atom order
    "C1=CC=CC2=C1N(C(=O)N2)CCCN4CCC(C(C3=CC=C(F)C=C3)=O)CC4", "O=c1[nH]c2ccccc2n1CCOc1ccc(Cl)cc1",
    "Cc1ncnn1CC(=O)Nc1ccccc1", "c1ncn(n1)Cc1ccc(cc1)C#N",
])
def test_fragment_names_do_not_depend_on_atom_order(smiles):
    mol = Chem.MolFromSmiles(smiles)
    reference = sorted(mol_to_graph_and_fragments(mol)[1])
    for seed in range(12):
        perm = np.random.default_rng(seed).permutation(mol.GetNumAtoms()).tolist()
        assert sorted(mol_to_graph_and_fragments(Chem.RenumberAtoms(mol, perm))[1]) == reference, seed


def test_vocabulary_keeps_the_lower_id_of_two_spellings():
    index = vocabulary_index(["[UNK]", "c1ncnn1", "CC", "c1nncn1", "O=c1[nH]c2ccccc2n1"])
    assert index[canonical_name("c1nncn1")] == 1 and index["CC"] == 2
    assert index[canonical_name("O=c1nc2ccccc2[nH]1")] == 4
    assert len(index) == 4
