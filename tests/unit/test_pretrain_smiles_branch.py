"""Pretraining the SMILES-branch variant: `hsafeat pretrain --smiles-branch` on tiny data (the
pattern of tests/integration/test_pretrain.py), tokens made from the cache's SMILES, and the run
identity of runs without the option unchanged."""
import json
from dataclasses import replace

import numpy as np
from typer.testing import CliRunner

from hsafeat.chem.featurize import featurize_one
from hsafeat.cli import app
from hsafeat.engine import Embedder
from hsafeat.pretrain.corpus import attach_smiles_tokens, load_cache, prepare, read_smiles
from hsafeat.pretrain.options import PretrainOptions
from hsafeat.weights import load_weights

CORPUS = "tests/data/drugs.smi"


def test_pretrain_with_the_smiles_branch_completes(tmp_path):
    args = ["pretrain", "--corpus", CORPUS, "--workdir", str(tmp_path / "work"), "--steps-a", "2", "--steps-b", "3",
            "--batch-size", "8", "--d-model", "16", "--d-out", "16", "--vocab-size", "32", "--readout", "none",
            "--smiles-branch", "-o", str(tmp_path / "w")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    weights = load_weights(str(tmp_path / "w"))
    assert weights.config.smiles_branch and weights.card["encoder_config"]["smiles_branch"]
    assert "--smiles-branch" in weights.card["command"].split()
    assert weights.model.smiles.gate.item() != 0          # stage B trained the gate off its zero start
    run = json.loads((tmp_path / "work" / "run.json").read_text())
    assert run["options"]["smiles_branch"] is True
    embedded = Embedder(weights).embed(["CCO", "c1ccccc1O", "not a smiles"])
    assert np.isfinite(embedded.embeddings["fused"][:2]).all() and np.isnan(embedded.embeddings["fused"][2]).all()


def test_a_cache_without_tokens_loads_and_gets_them_from_its_smiles(tmp_path):
    """The cache format is unchanged (no tokens in it); the ids made from its SMILES are those
    featurize gives at inference."""
    cache = tmp_path / "corpus.npz"
    prepare(CORPUS, cache, n=12, seed=0, vocab_size=16)
    assert "smiles_tokens" not in np.load(cache).files
    data = load_cache(cache)
    assert all(g.smiles_tokens.shape == (0,) for g in data.graphs)
    attach_smiles_tokens(data, 256)
    assert data.smiles == read_smiles(CORPUS, 12, 0)
    for smiles, graph in zip(data.smiles, data.graphs, strict=True):
        np.testing.assert_array_equal(graph.smiles_tokens, featurize_one(smiles, {}, 500, token_len=256)[0].smiles_tokens)


def test_runs_without_the_branch_keep_their_identity():
    """run.json of runs started before --smiles-branch existed lacks it: they still resume."""
    opts = PretrainOptions(out="w", corpus="c.csv", corpus_credit=None, workdir="work", n_molecules=None, steps_a=1,
                           steps_b=2, steps_c=3, batch_size=4, lr=0.001, lr_c=3e-4, backbone_lr_scale=0.3,
                           freeze_backbone_c=False, w_contrast=0.5, atom_masking="element", heads_on="fused",
                           batching="random", targets="v1", init_from=None, d_model=8, d_out=8, scaffold_router=True,
                           size_embedding=False, vocab_size=9, seed=3, readout="linear", readout_hidden=5,
                           readout_epochs=6, readout_lr=0.01, threads=1, recommended_column=None)
    assert "smiles_branch" not in opts.run_identity() and "smiles_" not in json.dumps(opts.encoder_options())
    on = replace(opts, smiles_branch=True)
    assert on.run_identity()["smiles_branch"] is True and on.encoder_options()["smiles_branch"] is True
    assert "--smiles-branch" in on.command() and "--no-smiles-branch" in opts.command()
