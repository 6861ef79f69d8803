"""Pretraining smoke test: the real `hsafeat pretrain` path on tiny data, end to end."""
import json
from dataclasses import replace

import numpy as np
from typer.testing import CliRunner

from hsafeat.cli import app
from hsafeat.engine import Embedder
from hsafeat.weights import load_weights


def test_pretrain_writes_loadable_weights_and_resumes(tmp_path):
    corpus = "tests/data/drugs.smi"
    args = ["pretrain", "--corpus", corpus, "--workdir", str(tmp_path / "work"), "--steps-a", "4",
            "--steps-b", "3", "--batch-size", "8", "--d-model", "16", "--d-out", "16", "--vocab-size", "32"]
    runner = CliRunner()
    first = runner.invoke(app, [*args, "-o", str(tmp_path / "w1")])
    assert first.exit_code == 0, first.output
    loaded = load_weights(str(tmp_path / "w1"))
    card = loaded.card
    assert card["corpus"]["n_molecules_used"] == 30 and len(card["corpus"]["sha256"]) == 64
    assert card["steps"] == {"stage_a": 4, "stage_b": 3, "stage_c": 0, "batch_size": 8}
    assert card["command"].startswith("hsafeat pretrain") and card["wall_time_s"] > 0
    assert set(card["final_losses"]) == {"a", "b"} and "fp" in card["final_losses"]["b"]
    assert len(loaded.fragment_vocab) > 1 and loaded.fragment_vocab[0] == "[UNK]"
    history = json.loads((tmp_path / "work" / "history.json").read_text())
    assert [r["stage"] for r in history][-1] == "b"

    # resuming a finished run trains nothing more and gives identical tensors
    again = runner.invoke(app, [*args, "-o", str(tmp_path / "w2"), "--resume"])
    assert again.exit_code == 0, again.output
    assert "resumed at stage b step 3" in again.output
    w2 = load_weights(str(tmp_path / "w2"))
    for name, tensor in loaded.model.state_dict().items():
        assert np.array_equal(tensor.numpy(), w2.model.state_dict()[name].numpy())

    refused = runner.invoke(app, [*args, "-o", str(tmp_path / "w1")])
    assert refused.exit_code == 2


def test_stage_c_continues_released_weights_with_v2_targets(tmp_path):
    """The v2 recipe: start from weights, keep their sizes and vocabulary, train end to end."""
    runner = CliRunner()
    base = ["pretrain", "--corpus", "tests/data/drugs.smi", "--batch-size", "8"]
    first = runner.invoke(app, [*base, "--workdir", str(tmp_path / "w1work"), "--steps-a", "2", "--steps-b", "2",
                                "--d-model", "16", "--d-out", "16", "--vocab-size", "32", "-o", str(tmp_path / "w1")])
    assert first.exit_code == 0, first.output
    w1 = load_weights(str(tmp_path / "w1"))
    args = [*base, "--workdir", str(tmp_path / "w2work"), "--steps-a", "0", "--steps-b", "0", "--steps-c", "3",
            "--targets", "v2", "--init-from", str(tmp_path / "w1")]
    second = runner.invoke(app, [*args, "-o", str(tmp_path / "w2")])
    assert second.exit_code == 0, second.output
    w2 = load_weights(str(tmp_path / "w2"))
    assert w2.fragment_vocab == w1.fragment_vocab and replace(w2.config, readout_descriptors=()) == w1.config
    card = w2.card
    # stage C's descriptor head ships as the readout: the desc_pred column, one value per descriptor
    assert list(w2.config.readout_descriptors) == card["targets"]["descriptors"] and w1.model.readout is None
    embedded = Embedder(w2).embed(["CCO", "c1ccccc1O", "not a smiles"])
    assert embedded.embeddings["desc_pred"].shape == (3, len(card["targets"]["descriptors"]))
    assert np.isfinite(embedded.embeddings["desc_pred"][:2]).all() and np.isnan(embedded.embeddings["desc_pred"][2]).all()
    assert set(card["final_losses"]) == {"c"} and {"fp", "counts", "desc", "contrast"} <= set(card["final_losses"]["c"])
    assert card["targets"]["set"] == "v2" and card["targets"]["morgan_radii"] == [1, 2, 3]
    assert len(card["targets"]["descriptors"]) > 100 and "init" in card["objectives"]
    moved = [n for n, t in w1.model.state_dict().items() if not np.array_equal(t.numpy(), w2.model.state_dict()[n].numpy())]
    assert any(n.startswith("backbone.") for n in moved) and any(n.startswith("fusion.") for n in moved)

    # a cache built for other targets is refused, not silently reused
    clash = runner.invoke(app, [*args[:-2], "--targets", "v1", "--init-from", str(tmp_path / "w1"), "-o", str(tmp_path / "w3")])
    assert clash.exit_code == 2 and "v2 targets" in clash.output

    # the size embedding can be added to released weights: zero at the start, trained in stage C
    sized = runner.invoke(app, [*base, "--workdir", str(tmp_path / "w4work"), *args[7:], "--size-embedding",
                                "-o", str(tmp_path / "w4")])
    assert sized.exit_code == 0, sized.output
    w4 = load_weights(str(tmp_path / "w4"))
    assert w4.config.size_embedding and not w1.config.size_embedding
    assert w4.model.size.out.weight.abs().sum() > 0 and "--size-embedding" in w4.card["command"]
