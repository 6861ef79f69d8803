"""The SMILES branch's tokenizer (hsafeat/chem/smiles_tokens.py) and how featurize carries its ids."""
from pathlib import Path

import numpy as np
from rdkit import Chem

from hsafeat.chem.featurize import featurize, featurize_one
from hsafeat.chem.smiles_tokens import CLS, MAX_LEN, TOKEN_ID, UNK, VOCAB, decode, smiles_token_ids, split_smiles

DRUGS = [line.split()[0] for line in (Path(__file__).parents[1] / "data" / "drugs.smi").read_text().splitlines()
         if line.strip()]
ODD = ["C[C@H](N)C(=O)O", "F/C=C/F", "[NH4+].[O-]C(=O)c1ccccc1", "O=[N+]([O-])c1ccc(Cl)cc1", "c1cc[nH]c1",
       "[2H]C([2H])([2H])Br", "C1CC2CC3CC4CC5CC6CC7CC8CC9CC%10CC%11CCC%11C%10C9C8C7C6C5C4C3C2C1", "*C", "[Na+].[Cl-]"]


def canonical(smiles: str) -> str:
    return Chem.MolToSmiles(Chem.MolFromSmiles(smiles))


def test_tokens_join_back_to_the_canonical_smiles():
    for smiles in DRUGS + ODD:
        can = canonical(smiles)
        assert "".join(split_smiles(can)) == can
        ids = smiles_token_ids(can)
        assert ids.dtype == np.int64 and ids[0] == CLS
        assert UNK not in ids, (can, [t for t in split_smiles(can) if t not in TOKEN_ID])
        assert decode(ids) == can


def test_atom_level_tokens():
    assert split_smiles("BrC(Cl)c1cc[nH]c1") == ["Br", "C", "(", "Cl", ")", "c", "1", "c", "c", "[nH]", "c", "1"]
    assert split_smiles("C%12CC%12") == ["C", "%12", "C", "C", "%12"]
    assert split_smiles("[C@@H](F)/C=C\\O") == ["[C@@H]", "(", "F", ")", "/", "C", "=", "C", "\\", "O"]
    assert VOCAB[0] == "<pad>" and len(set(VOCAB)) == len(VOCAB)


def test_unknown_tokens_are_unk():
    ids = smiles_token_ids(canonical("[Xe]"))   # a bracket atom outside the vocabulary
    assert ids.tolist() == [CLS, UNK]
    ids = smiles_token_ids("C[U+6]C")
    assert ids.tolist() == [CLS, TOKEN_ID["C"], UNK, TOKEN_ID["C"]]
    assert smiles_token_ids("C%(123)C")[2] == UNK   # three-digit ring closure: % and the rest split
    assert "".join(split_smiles("C%(123)C")) == "C%(123)C"


def test_long_smiles_are_cut_to_max_len_with_cls_first():
    long = canonical("C" * 400)
    ids = smiles_token_ids(long)
    assert len(ids) == MAX_LEN and ids[0] == CLS and (ids[1:] == TOKEN_ID["C"]).all()
    assert len(smiles_token_ids(long, 16)) == 16


def test_renumbered_atoms_and_other_spellings_give_the_same_ids():
    for smiles in DRUGS[:10] + ODD:
        mol = Chem.MolFromSmiles(smiles)
        ref = featurize_one(smiles, {}, 500, token_len=MAX_LEN)[0].smiles_tokens
        for seed in range(3):
            perm = np.random.default_rng(seed).permutation(mol.GetNumAtoms()).tolist()
            spelt = Chem.MolToSmiles(Chem.RenumberAtoms(mol, perm), canonical=False)
            other = featurize_one(spelt, {}, 500, token_len=MAX_LEN)[0].smiles_tokens
            np.testing.assert_array_equal(ref, other)


def test_featurize_makes_tokens_only_when_asked():
    plain = featurize(["CCO", "not a smiles"], {}, 500)
    assert plain.graphs[0].smiles_tokens.shape == (0,)
    asked = featurize(["CCO", "not a smiles"], {}, 500, token_len=MAX_LEN)
    assert decode(asked.graphs[0].smiles_tokens) == asked.canonical[0] == "CCO" and asked.graphs[1] is None
    for name in ("x", "edge_index", "edge_attr", "frag_ids", "order", "prox_weight"):   # the graph is the same
        np.testing.assert_array_equal(getattr(plain.graphs[0], name), getattr(asked.graphs[0], name))
