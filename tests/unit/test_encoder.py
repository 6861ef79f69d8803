"""Invariants of ARCHITECTURE.md on a tiny random encoder."""
from dataclasses import replace

import numpy as np
import pytest
import torch
from rdkit import Chem

from hsafeat.chem import mol_to_graph, parse_smiles
from hsafeat.data import collate
from hsafeat.nn.gate import ATTENTION, MAMBA
from hsafeat.nn.losses import load_balancing_loss, nt_xent, scaffold_routing_contrastive
from hsafeat.nn.readout import PooledMLPReadout, level_sums
from tests.conftest import TEST_VOCAB, tiny_model

VOCAB = {s: i for i, s in enumerate(TEST_VOCAB)}
MOLECULES = ["CC(=O)Nc1ccc(O)cc1", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C", "[Na+].[Cl-]", "C", "C[C@H](N)C(=O)O",
             "F/C=C/F", "[NH4+].[O-]C(=O)c1ccccc1", "O=[N+]([O-])c1ccc(Cl)cc1"]


def graphs(smiles):
    return [mol_to_graph(parse_smiles(s).mol, VOCAB) for s in smiles]


def embed(model, gs, **kw):
    with torch.inference_mode():
        out = model(collate(gs), **kw)
    return {k: v.numpy() for k, v in out.embeddings().items()}, out


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def test_shapes(model):
    emb, out = embed(model, graphs(MOLECULES))
    n = len(MOLECULES)
    assert emb["fused"].shape == (n, 32) and emb["level_0"].shape == (n, 16) and emb["motif"].shape == (n, 16)
    assert out.tokens.shape == (n, 28, 16) and out.gate_logits.shape == (n, 6, 2)
    assert set(emb) == {"fused", "motif", "pooled", *[f"level_{i}" for i in range(6)]}
    assert emb["pooled"].shape == (n, model.config.pooled_dim) == (n, 32 + 6 * model.config.d_model)


def test_both_projectors_are_used(model):
    _, out = embed(model, graphs(MOLECULES))
    chosen = out.gate_weights.argmax(-1)
    assert (chosen == ATTENTION).any() and (chosen == MAMBA).any()


@pytest.mark.parametrize("force", [None, ATTENTION, MAMBA])
def test_atom_renumbering_changes_nothing(model, force):
    for smiles in MOLECULES:
        mol = Chem.MolFromSmiles(smiles)
        ref, _ = embed(model, [mol_to_graph(mol, VOCAB)], force_projector=force)
        for seed in range(3):
            perm = np.random.default_rng(seed).permutation(mol.GetNumAtoms()).tolist()
            other, _ = embed(model, [mol_to_graph(Chem.RenumberAtoms(mol, perm), VOCAB)], force_projector=force)
            for k in ref:
                np.testing.assert_allclose(ref[k], other[k], atol=1e-5)


def test_other_spellings_change_nothing(model):
    spellings = ["OC(=O)c1ccccc1", "c1ccccc1C(=O)O", "C1=CC=CC=C1C(O)=O", "O=C(O)C1=CC=CC=C1"]
    ref, _ = embed(model, graphs(spellings[:1]))
    for s in spellings[1:]:
        other, _ = embed(model, graphs([s]))
        np.testing.assert_allclose(ref["fused"], other["fused"], atol=1e-5)


@pytest.mark.parametrize("force", [None, ATTENTION, MAMBA])
def test_batch_neighbours_and_size_change_nothing(model, force):
    gs = graphs(MOLECULES)
    together, _ = embed(model, gs, force_projector=force)
    shuffled_order = [3, 7, 0, 5, 1, 6, 2, 4]
    shuffled, _ = embed(model, [gs[i] for i in shuffled_order], force_projector=force)
    for i, g in enumerate(gs):
        alone, _ = embed(model, [g], force_projector=force)
        for k in alone:
            np.testing.assert_allclose(alone[k][0], together[k][i], atol=1e-5)
            np.testing.assert_allclose(alone[k][0], shuffled[k][shuffled_order.index(i)], atol=1e-5)


def test_edge_cases_are_finite(model):
    big = "CC(C)" * 40  # 120 atoms
    smiles = ["[Na+]", "[H][H]", "[Na+].[Cl-].[K+].[Br-]", "C[C@@H]1CC[C@H](O)CC1", big, "*C", "[13CH4]", "[CH3]"]
    gs = graphs(smiles)
    assert gs[4].n_atoms > 100
    emb, out = embed(model, gs)
    for v in emb.values():
        assert np.isfinite(v).all()
    assert torch.isfinite(out.tokens).all()


def test_gate_receives_gradients_in_training():
    model = tiny_model().train()
    out = model(collate(graphs(MOLECULES)))
    out.fused.pow(2).sum().backward()
    assert model.hap.gate.score.weight.grad is not None
    assert model.hap.gate.score.weight.grad.abs().sum() > 0
    # both projectors learn in training (straight-through runs both)
    assert model.hap.attention.queries.grad.abs().sum() > 0
    assert model.hap.mamba.mamba.in_proj.weight.grad.abs().sum() > 0
    assert model.fusion.router.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("min_rows", [1, 3])
def test_training_length_groups_change_no_result(monkeypatch, min_rows):
    """Training runs each group of similar-length rows at its own padded width: outputs and
    gradients equal one pass at the batch's full width."""
    import hsafeat.nn.hap as hap

    mixed = MOLECULES + ["CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC(=O)O", "OC1C(O)C(O)C(O)C(O)C1O"]

    def run(group_min_rows):
        monkeypatch.setattr(hap, "GROUP_MIN_ROWS", group_min_rows)
        model = tiny_model().train()
        torch.manual_seed(0)   # the same Gumbel draws in both runs
        out = model(collate(graphs(mixed)))
        out.fused.pow(2).sum().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return out.fused.detach(), grads

    whole, whole_grads = run(10**9)   # one group: every row at the full width
    grouped, grouped_grads = run(min_rows)
    torch.testing.assert_close(grouped, whole, atol=1e-5, rtol=1e-5)
    assert whole_grads.keys() == grouped_grads.keys()
    for name, grad in whole_grads.items():
        torch.testing.assert_close(grouped_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_length_groups_cover_every_row_once_within_their_width():
    from hsafeat.nn.hap import GROUP_MIN_ROWS, length_groups

    n_atoms = torch.tensor([5] * 100 + [6] * 30 + [40] * 70 + [248])
    groups = length_groups(n_atoms)
    rows = torch.cat([sel for sel, _ in groups])
    assert sorted(rows.tolist()) == list(range(len(n_atoms)))
    assert all(int(n_atoms[sel].max()) == width for sel, width in groups)
    assert len(groups) > 1 and all(len(sel) >= GROUP_MIN_ROWS for sel, _ in groups[:-1])


def test_only_chosen_projector_runs_at_inference(model):
    calls = {"attention": 0, "mamba": 0}

    def hook(name):
        def count(_module, args, _out):
            calls[name] += args[0].shape[0]
        return count

    handles = [model.hap.attention.register_forward_hook(hook("attention")),
               model.hap.mamba.register_forward_hook(hook("mamba"))]
    try:
        _, out = embed(model, graphs(MOLECULES))
    finally:
        for h in handles:
            h.remove()
    chosen = out.gate_weights.argmax(-1)
    assert calls["attention"] == int((chosen == ATTENTION).sum())
    assert calls["mamba"] == int((chosen == MAMBA).sum())
    assert calls["attention"] + calls["mamba"] == len(MOLECULES) * 6


def test_deterministic_run_to_run(model):
    a, _ = embed(model, graphs(MOLECULES))
    b, _ = embed(model, graphs(MOLECULES))
    for k in a:
        assert np.array_equal(a[k], b[k])


def test_router_top2_weights_sum_to_one(model):
    _, out = embed(model, graphs(MOLECULES))
    assert out.expert_index.shape[-1] == 2
    torch.testing.assert_close(out.expert_weight.sum(-1), torch.ones(out.expert_weight.shape[:-1]))


def test_aux_losses():
    logits = torch.zeros(4, 28, 4)
    index = torch.arange(4).repeat(4, 28, 1)[..., :2]
    assert load_balancing_loss(logits, index, 4).item() == pytest.approx(1.0)
    a = torch.randn(8, 16)
    assert nt_xent(a, a).item() < nt_xent(a, torch.randn(8, 16)).item()
    scaffold = torch.tensor([0, 0, 1, 1, 2, 3, 4, 5])
    loss = scaffold_routing_contrastive(torch.randn(8, 28, 4), scaffold)
    assert torch.isfinite(loss) and loss > 0
    assert scaffold_routing_contrastive(torch.randn(3, 28, 4), torch.tensor([0, 1, 2])).item() == 0.0


def sized_model(zero_init: bool = True):
    sized = tiny_model(size_embedding=True)
    sized.load_extending(tiny_model().state_dict())   # everything but the new layer
    if not zero_init:
        torch.manual_seed(1)
        with torch.no_grad():
            sized.size.out.weight.normal_()
    return sized


def test_size_embedding_starts_as_the_model_it_extends(model):
    ref, _ = embed(model, graphs(MOLECULES))
    same, _ = embed(sized_model(), graphs(MOLECULES))
    for k in ref:
        np.testing.assert_array_equal(ref[k], same[k])


def test_size_embedding_tells_sizes_apart_and_keeps_invariants():
    sized = sized_model(zero_init=False)
    small, _ = embed(sized, graphs(["CCO"]))
    large, _ = embed(sized, graphs(["CCO.CCO.CCO"]))
    assert np.abs(small["fused"] - large["fused"]).max() > 1e-3
    gs = graphs(MOLECULES)
    together, _ = embed(sized, gs)
    for i, smiles in enumerate(MOLECULES):
        mol = Chem.MolFromSmiles(smiles)
        perm = np.random.default_rng(i).permutation(mol.GetNumAtoms()).tolist()
        alone, _ = embed(sized, [mol_to_graph(Chem.RenumberAtoms(mol, perm), VOCAB)])
        np.testing.assert_allclose(alone["fused"][0], together["fused"][i], atol=1e-5)


def test_descriptor_readout_is_a_linear_map_of_fused_and_changes_nothing_else(model):
    head = torch.nn.Linear(32, 3)
    with_readout = model.with_readout(head, ["MolLogP", "MolWt", "TPSA"])
    assert model.readout is None and with_readout.config.readout_descriptors == ("MolLogP", "MolWt", "TPSA")
    ref, _ = embed(model, graphs(MOLECULES))
    out, _ = embed(with_readout, graphs(MOLECULES))
    assert set(out) == set(ref) | {"desc_pred"}
    for k in ref:
        np.testing.assert_array_equal(ref[k], out[k])
    with torch.no_grad():
        expected = head(torch.from_numpy(ref["fused"])).numpy()
    np.testing.assert_allclose(out["desc_pred"], expected, atol=1e-6)
    again = type(model)(with_readout.config)       # what load_weights builds from config.json
    again.load_state_dict(with_readout.state_dict(), strict=True)
    fresh = type(model)(model.config)
    fresh.load_extending(with_readout.state_dict())  # continuing training drops the readout
    assert fresh.readout is None


def pooled_readout_model(model):
    c = model.config
    d_in = 2 * c.d_out + c.n_levels * c.d_model  # fused + the level sums
    torch.manual_seed(0)
    head = PooledMLPReadout(d_in, 8, 2)
    return model.with_readout(head, ["MolWt", "HeavyAtomCount"], kind="pooled_mlp", hidden=8), head


def test_pooled_readout_keeps_the_invariants_and_changes_nothing_else(model):
    pooled, _ = pooled_readout_model(model)
    gs = graphs(MOLECULES)
    ref, _ = embed(model, gs)
    together, _ = embed(pooled, gs)
    for k in ref:
        np.testing.assert_array_equal(ref[k], together[k])
    for i, smiles in enumerate(MOLECULES):
        alone, _ = embed(pooled, [gs[i]])
        np.testing.assert_allclose(alone["desc_pred"][0], together["desc_pred"][i], atol=1e-5)
        mol = Chem.MolFromSmiles(smiles)
        perm = np.random.default_rng(i).permutation(mol.GetNumAtoms()).tolist()
        renumbered, _ = embed(pooled, [mol_to_graph(Chem.RenumberAtoms(mol, perm), VOCAB)])
        np.testing.assert_allclose(renumbered["desc_pred"][0], together["desc_pred"][i], atol=1e-5)
    again = type(model)(pooled.config)  # what load_weights builds from config.json
    again.load_state_dict(pooled.state_dict(), strict=True)


def test_pooled_readout_can_count_atoms(model):
    """Unlike fused (means and maxima), the level sums grow with the molecule: a chain and its
    doubled copy differ by exactly the doubled node-state sum in the readout's input."""
    pooled, _ = pooled_readout_model(model)
    two = collate(graphs(["C1CC1", "C1CC1.C1CC1"]))
    with torch.inference_mode():
        levels = pooled.backbone(two.x, two.edge_index, two.edge_attr)
        sums = level_sums(levels, two.batch, two.n_graphs)
    np.testing.assert_allclose(sums[1].numpy(), 2 * sums[0].numpy(), rtol=1e-5, atol=1e-6)


def test_unknown_readout_kind_is_refused(model):
    with pytest.raises(ValueError, match="unknown readout kind"):
        type(model)(replace(model.config, readout_descriptors=("MolWt",), readout_kind="quadratic"))


def test_cross_attention_equals_multihead_attention_with_key_padding_mask():
    """The block passes its padding as attn_mask in training (start-up: key_padding_mask imports
    sympy), bit for bit what key_padding_mask gives; at inference it never projects the tokens
    (few_query_attention), the same attention to float32 rounding."""
    from hsafeat.nn.attention import CrossAttentionBlock

    torch.manual_seed(0)
    block = CrossAttentionBlock(16, 4)
    queries, tokens = torch.randn(3, 2, 16), torch.randn(3, 5, 16)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    with torch.no_grad():
        attended, _ = block.attn(queries, tokens, tokens, key_padding_mask=~mask, need_weights=False)
        q = block.norm1(queries + attended)
        expected = block.norm2(q + block.ffn(q))
        assert torch.equal(block.train()(queries, tokens, mask), expected)
        torch.testing.assert_close(block.eval()(queries, tokens, mask), expected, rtol=1e-5, atol=1e-6)


def test_few_query_attention_ignores_padding_and_matches_attention():
    """Padding tokens never count, whatever they hold; the result is nn.MultiheadAttention's."""
    from hsafeat.nn.attention import few_query_attention

    torch.manual_seed(1)
    attn = torch.nn.MultiheadAttention(32, 4, batch_first=True).eval()
    with torch.no_grad():
        attn.in_proj_bias.normal_()  # the key bias cancels in the softmax, the value bias must not
        queries, tokens = torch.randn(4, 3, 32), torch.randn(4, 7, 32)
        mask = torch.arange(7)[None, :] < torch.tensor([7, 3, 1, 5])[:, None]
        expected, _ = attn(queries, tokens, tokens, key_padding_mask=~mask, need_weights=False)
        got = few_query_attention(attn, queries, tokens, mask)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
        noisy = torch.where(mask[..., None], tokens, torch.full_like(tokens, 1e3))
        torch.testing.assert_close(few_query_attention(attn, queries, noisy, mask), got, rtol=0, atol=0)


def test_proximity_mix_of_chosen_rows_equals_the_whole_mix_bit_for_bit():
    """Inference mixes only the rows routed to Graph-Mamba (hap.proximity_mix_rows); any subset of
    (level, molecule) rows, repeats and a single atom included, gets the whole mix's bits."""
    from hsafeat.chem.graph import mol_to_graph_and_fragments
    from hsafeat.chem.parse import parse_smiles
    from hsafeat.data.batch import collate
    from hsafeat.nn.hap import densify, proximity_mix, proximity_mix_rows

    smiles = ["CCO", "[Na+].[Cl-]", "c1ccccc1C(=O)Nc1ccncc1", "C", "CC(C)(C)c1ccc(O)cc1C[C@H](N)C(=O)O"]
    batch = collate([mol_to_graph_and_fragments(parse_smiles(s).mol)[0] for s in smiles])
    torch.manual_seed(0)
    levels = torch.randn(3, batch.x.shape[0], 8)
    flat = densify(levels, batch)                                              # 3 x B*L x 8
    rows = flat.view(3 * batch.n_graphs, batch.max_atoms, 8)
    whole = proximity_mix(flat, batch).view_as(rows)
    for sel in ([0], [4, 3], [14, 0, 7, 7, 2], list(range(3 * batch.n_graphs))):
        sel = torch.tensor(sel)
        got = proximity_mix_rows(rows.index_select(0, sel), sel % batch.n_graphs, batch)
        assert torch.equal(got, whole.index_select(0, sel)), sel
