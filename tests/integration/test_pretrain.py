"""Pretraining: the real `hsafeat pretrain` path on tiny data, end to end, to a whole release."""
import json
import shlex
from dataclasses import fields, replace

import numpy as np
import typer
from typer.testing import CliRunner

from hsafeat.cli import app
from hsafeat.engine import Embedder
from hsafeat.pretrain.options import PretrainOptions
from hsafeat.weights import DESC_TARGETS_FILE, load_desc_targets, load_weights

CORPUS = "tests/data/drugs.smi"


def test_pretrain_writes_a_whole_release_and_resumes(tmp_path):
    args = ["pretrain", "--corpus", CORPUS, "--workdir", str(tmp_path / "work"), "--steps-a", "4", "--steps-b", "3",
            "--batch-size", "8", "--d-model", "16", "--d-out", "16", "--vocab-size", "32", "--readout-hidden", "8",
            "--readout-epochs", "2"]
    runner = CliRunner()
    first = runner.invoke(app, [*args, "-o", str(tmp_path / "w1")])
    assert first.exit_code == 0, first.output
    loaded = load_weights(str(tmp_path / "w1"))
    card = loaded.card
    assert card["corpus"]["n_molecules_used"] == 30 and len(card["corpus"]["sha256"]) == 64
    assert len(card["corpus"]["smiles_sha256"]) == 64 and card["git"].keys() == {"commit", "dirty"}
    assert card["steps"] == {"stage_a": 4, "stage_b": 3, "stage_c": 0, "batch_size": 8, "readout_epochs": 2}
    assert card["command"].startswith("hsafeat pretrain") and card["wall_time_s"] > 0 and "benchmark" not in card
    assert set(card["final_losses"]) == {"a", "b", "readout"} and "fp" in card["final_losses"]["b"]
    assert set(card["files"]) == {"model.safetensors", "config.json", DESC_TARGETS_FILE}
    assert len(loaded.fragment_vocab) > 1 and loaded.fragment_vocab[0] == "[UNK]"
    history = json.loads((tmp_path / "work" / "history.json").read_text())
    assert [r["stage"] for r in history][-1] == "b"

    # the readout ships with the statistics that give desc_pred back in RDKit's units
    stats = load_desc_targets(loaded)
    assert stats.names == card["targets"]["descriptors"] == list(loaded.config.readout_descriptors)
    molwt = Embedder(loaded).embed(["CCO"]).embeddings["desc_pred"][0, stats.names.index("MolWt")]
    assert np.isfinite(molwt * stats.std[stats.names.index("MolWt")] + stats.mean[stats.names.index("MolWt")])

    # resuming a finished run trains nothing more and gives identical tensors
    again = runner.invoke(app, [*args, "-o", str(tmp_path / "w2"), "--resume"])
    assert again.exit_code == 0, again.output
    assert "resumed at stage b step 3" in again.output
    w2 = load_weights(str(tmp_path / "w2"))
    for name, tensor in loaded.model.state_dict().items():
        assert np.array_equal(tensor.numpy(), w2.model.state_dict()[name].numpy())

    refused = runner.invoke(app, [*args, "-o", str(tmp_path / "w1")])
    assert refused.exit_code == 2
    # a workdir holding a run is continued with --resume, never silently started over
    fresh = runner.invoke(app, [*args, "-o", str(tmp_path / "w3")])
    assert fresh.exit_code == 2 and "--resume" in fresh.output and not (tmp_path / "w3").exists()


def test_stage_c_continues_released_weights_with_v2_targets(tmp_path):
    """The v2 recipe: start from weights, keep their sizes and vocabulary, train end to end."""
    runner = CliRunner()
    base = ["pretrain", "--corpus", CORPUS, "--batch-size", "8"]
    first = runner.invoke(app, [*base, "--workdir", str(tmp_path / "w1work"), "--steps-a", "2", "--steps-b", "2",
                                "--d-model", "16", "--d-out", "16", "--vocab-size", "32", "--readout", "none",
                                "-o", str(tmp_path / "w1")])
    assert first.exit_code == 0, first.output
    w1 = load_weights(str(tmp_path / "w1"))
    assert w1.model.readout is None and not (tmp_path / "w1" / DESC_TARGETS_FILE).exists()
    args = [*base, "--workdir", str(tmp_path / "w2work"), "--steps-a", "0", "--steps-b", "0", "--steps-c", "3",
            "--targets", "v2", "--readout", "linear", "--readout-epochs", "2", "--init-from", str(tmp_path / "w1")]
    second = runner.invoke(app, [*args, "-o", str(tmp_path / "w2")])
    assert second.exit_code == 0, second.output
    w2 = load_weights(str(tmp_path / "w2"))
    assert w2.fragment_vocab == w1.fragment_vocab and replace(w2.config, readout_descriptors=()) == w1.config
    card = w2.card
    assert card["init"] == {"name": "w1", "sha256": w1.sha256}
    # the readout fitted on the finished encoder is the desc_pred column, one value per descriptor
    assert list(w2.config.readout_descriptors) == card["targets"]["descriptors"] == card["readout"]["descriptors"]
    embedded = Embedder(w2).embed(["CCO", "c1ccccc1O", "not a smiles"])
    assert embedded.embeddings["desc_pred"].shape == (3, len(card["targets"]["descriptors"]))
    assert np.isfinite(embedded.embeddings["desc_pred"][:2]).all() and np.isnan(embedded.embeddings["desc_pred"][2]).all()
    assert set(card["final_losses"]) == {"c", "readout"}
    assert {"fp", "counts", "desc", "contrast"} <= set(card["final_losses"]["c"])
    assert card["targets"]["set"] == "v2" and card["targets"]["morgan_radii"] == [1, 2, 3]
    assert len(card["targets"]["descriptors"]) > 100 and "stage_c" in card["objectives"]
    moved = [n for n, t in w1.model.state_dict().items() if not np.array_equal(t.numpy(), w2.model.state_dict()[n].numpy())]
    assert any(n.startswith("backbone.") for n in moved) and any(n.startswith("fusion.") for n in moved)

    # a run is resumed only with its own options, and a cache made for other targets is never reused
    clash = runner.invoke(app, [*args[:-2], "--targets", "v1", "--init-from", str(tmp_path / "w1"), "--resume",
                                "-o", str(tmp_path / "w3")])
    assert clash.exit_code == 2 and "other options (targets)" in clash.output
    (tmp_path / "w2work" / "checkpoint.pt").unlink()
    stale = runner.invoke(app, [*args[:-2], "--targets", "v1", "--init-from", str(tmp_path / "w1"), "-o", str(tmp_path / "w3")])
    assert stale.exit_code == 2 and "another corpus recipe (targets" in stale.output

    # the size embedding can be added to released weights: zero at the start, trained in stage C
    sized = runner.invoke(app, [*base, "--workdir", str(tmp_path / "w4work"), *args[5:], "--size-embedding",
                                "-o", str(tmp_path / "w4")])
    assert sized.exit_code == 0, sized.output
    w4 = load_weights(str(tmp_path / "w4"))
    assert w4.config.size_embedding and not w1.config.size_embedding
    assert w4.model.size.out.weight.abs().sum() > 0 and "--size-embedding" in w4.card["command"]


def test_every_option_is_in_the_recorded_command():
    """The card's command is rebuilt from PretrainOptions: each CLI option is a field (but the two
    that only split a run into sittings), and the command parses back to the same options."""
    command = typer.main.get_command(app).commands["pretrain"]  # type: ignore[attr-defined]
    assert {p.name for p in command.params} == {f.name for f in fields(PretrainOptions)} | {"resume", "stop_after"}
    opts = PretrainOptions(out="w", corpus="c.csv", corpus_credit="ChEMBL (CC BY-SA 3.0), ZINC", workdir="work",
                           n_molecules=None, steps_a=1, steps_b=2, steps_c=3,
                           batch_size=4, lr=0.001, lr_c=3e-4, backbone_lr_scale=0.3, freeze_backbone_c=True,
                           w_contrast=0.0, atom_masking="attributes", heads_on="pooled", batching="size",
                           targets="v2",
                           init_from="some weights", d_model=8, d_out=8,
                           scaffold_router=False, size_embedding=True, vocab_size=9, seed=3, readout="linear",
                           readout_hidden=5, readout_epochs=6, readout_lr=0.01, threads=2, recommended_column="pooled",
                           smiles_branch=True)
    parsed = command.make_context("pretrain", shlex.split(opts.command())[2:]).params
    assert PretrainOptions(**{k: v for k, v in parsed.items() if k not in ("resume", "stop_after")}).command() == opts.command()


def test_v3_targets_add_mordred_descriptors_to_the_readout(tmp_path):
    """--targets v3: RDKit's descriptors then Mordred's, predicted by the readout, in the card,
    and back in real units through desc_targets.json."""
    import pytest
    pytest.importorskip("mordred")
    args = ["pretrain", "--corpus", CORPUS, "--workdir", str(tmp_path / "work"), "--steps-a", "2", "--steps-b", "0",
            "--steps-c", "2", "--targets", "v3", "--n-molecules", "12", "--batch-size", "8", "--d-model", "16", "--d-out", "16",
            "--vocab-size", "32", "--readout-hidden", "8", "--readout-epochs", "1", "-o", str(tmp_path / "w")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    loaded = load_weights(str(tmp_path / "w"))
    names = loaded.card["targets"]["descriptors"]
    assert loaded.card["targets"]["set"] == "v3" and loaded.card["targets"]["count_radius"] == 2
    rdkit_names = [n for n in names if not n.startswith("mordred:")]
    assert "MolWt" in rdkit_names and sum(n.startswith("mordred:") for n in names) > 500
    assert names.index("MolWt") < min(names.index(n) for n in names if n.startswith("mordred:"))
    assert list(loaded.config.readout_descriptors) == names == load_desc_targets(loaded).names
    assert "Mordred (mordredcommunity)" in json.loads((tmp_path / "w" / DESC_TARGETS_FILE).read_text())["provenance"]
    assert len(list((tmp_path / "work" / "mordred").glob("shard_*.npz"))) == 1
