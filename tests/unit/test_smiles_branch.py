"""DMCA's SMILES branch (hsafeat/nn/smiles_branch.py) on a tiny encoder: the invariants of
ARCHITECTURE.md hold with it on, it starts as the model without it, and configs without it are
unchanged."""
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from rdkit import Chem

from hsafeat.chem.featurize import featurize, featurize_one
from hsafeat.chem.smiles_tokens import MASK, VOCAB_SIZE
from hsafeat.data import collate
from hsafeat.engine import Embedder
from hsafeat.nn.config import EncoderConfig
from hsafeat.pretrain.objectives import mask_tokens
from hsafeat.weights import bundled_dir, save_weights
from tests.conftest import TEST_VOCAB, tiny_config, tiny_model

VOCAB = {s: i for i, s in enumerate(TEST_VOCAB)}
MOLECULES = ["CC(=O)Nc1ccc(O)cc1", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C", "[Na+].[Cl-]", "C", "C[C@H](N)C(=O)O",
             "F/C=C/F", "[NH4+].[O-]C(=O)c1ccccc1", "O=[N+]([O-])c1ccc(Cl)cc1"]
DRUGS = [line.split()[0] for line in (Path(__file__).parents[1] / "data" / "drugs.smi").read_text().splitlines()
         if line.strip()]
BRANCH = {"smiles_branch": True, "smiles_vocab": VOCAB_SIZE}


def branch_model(gate: float = 1.0, seed: int = 0):
    """A tiny encoder with the branch switched on (gate 1, so the tests see what it adds)."""
    model = tiny_model(seed, **BRANCH)
    with torch.no_grad():
        model.smiles.gate.fill_(gate)
    return model


def graphs(smiles: list[str], token_len: int = 256):
    return featurize(smiles, VOCAB, 500, token_len).graphs


def embed(model, gs, token_width: int | None = None) -> dict[str, np.ndarray]:
    with torch.inference_mode():
        return {k: v.numpy() for k, v in model(collate(gs, token_width=token_width)).embeddings().items()}


def test_gate_at_zero_is_the_model_without_the_branch():
    plain, with_branch = tiny_model(), tiny_model(**BRANCH)
    # built last: the other parameters are those of the model without it, seed for seed
    for name, tensor in plain.state_dict().items():
        assert torch.equal(tensor, with_branch.state_dict()[name]), name
    gs = graphs(MOLECULES)
    ref, out = embed(plain, gs), embed(with_branch, gs)
    for k in ref:
        np.testing.assert_array_equal(ref[k], out[k], err_msg=k)
    with torch.no_grad():
        with_branch.smiles.gate.fill_(0.5)
    moved = embed(with_branch, gs)
    assert not np.allclose(ref["fused"], moved["fused"], atol=1e-4)   # the branch is read once g moves


def test_renumbered_atoms_change_nothing_with_the_branch_on():
    model = branch_model()
    for smiles in MOLECULES:
        mol = Chem.MolFromSmiles(smiles)
        ref = embed(model, graphs([smiles]))
        for seed in range(3):
            perm = np.random.default_rng(seed).permutation(mol.GetNumAtoms()).tolist()
            spelt = Chem.MolToSmiles(Chem.RenumberAtoms(mol, perm), canonical=False)
            other = embed(model, graphs([spelt]))
            for k in ref:
                np.testing.assert_allclose(ref[k], other[k], atol=1e-5, err_msg=f"{smiles} {k}")


def test_batch_neighbours_and_padding_change_nothing_with_the_branch_on():
    model = branch_model()
    gs = graphs(MOLECULES)
    together = embed(model, gs)
    order = [3, 7, 0, 5, 1, 6, 2, 4]
    shuffled = embed(model, [gs[i] for i in order])
    for i, g in enumerate(gs):
        alone = embed(model, [g])
        padded = embed(model, [g], token_width=64)
        for k in alone:
            np.testing.assert_allclose(alone[k][0], together[k][i], atol=1e-5)
            np.testing.assert_allclose(alone[k][0], shuffled[k][order.index(i)], atol=1e-5)
            np.testing.assert_allclose(alone[k][0], padded[k][0], atol=1e-5)


def test_embedder_gives_the_same_bits_alone_and_in_a_batch(tmp_path):
    """The bucketing contract (data/buckets.py) with the branch: token widths join the buckets."""
    save_weights(tmp_path / "branch", branch_model(), TEST_VOCAB, 500, {"note": "random test weights"})
    embedder = Embedder(str(tmp_path / "branch"))
    assert embedder.weights.config.smiles_branch and embedder.weights.config.token_len == 256
    smiles = DRUGS + MOLECULES
    together = embedder.embed(smiles)
    assert together.valid.all() and all(np.isfinite(v).all() for v in together.embeddings.values())
    embedder.batch_size = 3
    small = embedder.embed(smiles)
    for k, v in small.embeddings.items():
        assert np.array_equal(v.view(np.uint32), together.embeddings[k].view(np.uint32)), k
    for i in (0, 5, len(DRUGS), len(DRUGS) + 3):
        alone = embedder.embed([smiles[i]])
        for k, v in alone.embeddings.items():
            assert np.array_equal(v[0].view(np.uint32), together.embeddings[k][i].view(np.uint32)), (smiles[i], k)


def test_weights_with_the_branch_need_tokens():
    model = branch_model()
    with pytest.raises(ValueError, match="SMILES tokens"):
        model(collate(graphs(["CCO"], token_len=0)))


def test_the_branch_learns_in_training():
    model = tiny_model(**BRANCH).train()
    out = model(collate(graphs(MOLECULES)))
    out.fused.pow(2).sum().backward()
    assert model.smiles.gate.grad is not None and model.smiles.gate.grad.abs() > 0


def test_configs_without_the_branch_keys_load_and_write_the_same_dict():
    shipped = json.loads((bundled_dir() / "hsanet-moses-v2.2" / "config.json").read_text())["encoder"]
    assert not any(k.startswith("smiles_") for k in shipped)
    config = EncoderConfig.from_dict(shipped)
    assert not config.smiles_branch and config.token_len == 0
    assert json.dumps(config.to_dict()) == json.dumps(shipped)   # byte-identical config.json section
    plain = tiny_config()
    assert not any(k.startswith("smiles_") for k in plain.to_dict())
    on = replace(plain, **BRANCH)
    assert {"smiles_branch", "smiles_vocab", "smiles_layers", "smiles_heads", "smiles_max_len"} <= set(on.to_dict())
    assert EncoderConfig.from_dict(json.loads(json.dumps(on.to_dict()))) == on


def test_view_masking_hides_tokens_but_not_cls_or_padding():
    batch = collate(graphs(MOLECULES))
    view = mask_tokens(batch, 0.5, torch.Generator().manual_seed(0))
    real = batch.smiles_tokens != 0
    changed = view.smiles_tokens != batch.smiles_tokens
    assert changed.any() and (view.smiles_tokens[changed] == MASK).all()
    assert not changed[:, 0].any() and not changed[~real].any()
    plain = collate(graphs(MOLECULES, token_len=0))
    gen = torch.Generator().manual_seed(0)
    state = gen.get_state()
    assert mask_tokens(plain, 0.5, gen) is plain and torch.equal(gen.get_state(), state)   # nothing drawn


def test_collate_pads_tokens_and_refuses_a_mixed_batch():
    g = graphs(["CCO", "c1ccccc1"])
    batch = collate(g)
    assert batch.smiles_tokens.shape == (2, 9) and batch.smiles_tokens[0, 4:].eq(0).all()
    assert collate(g, token_width=32).smiles_tokens.shape == (2, 32)
    assert collate(graphs(["CCO"], token_len=0)).smiles_tokens is None
    with pytest.raises(ValueError, match="some molecules"):
        collate([g[0], featurize_one("CCO", VOCAB, 500)[0]])
