"""A release is reproduced by the command its card records, and a run stopped part-way and
resumed gives the release an uninterrupted run gives: every tensor equal, every card field equal
but the wall time and the time of writing."""
import json
import shlex
from pathlib import Path

import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from hsafeat.cli import app
from hsafeat.pretrain.card_check import Releases, check_release

DRUGS = Path(__file__).resolve().parent.parent / "data" / "drugs.smi"
TINY = ["--n-molecules", "24", "--steps-a", "2", "--steps-b", "3", "--steps-c", "3", "--targets", "v2",
        "--batch-size", "8", "--d-model", "16", "--d-out", "16", "--vocab-size", "32", "--readout-hidden", "16",
        "--readout-epochs", "3", "--seed", "5", "--atom-masking", "attributes", "--heads-on", "pooled",
        "--batching", "size",
        "--recommended-column", "pooled",
        "--corpus-credit", "the project's test molecules"]
TIMES = ("wall_time_s", "written_at")


def sitting(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def git_fixed(monkeypatch):
    """The two runs may straddle a commit in a shared checkout; the commit is not what is tested."""
    monkeypatch.setattr("hsafeat.pretrain.run.git_state", lambda: {"commit": "0" * 40, "dirty": False})


def make_corpus(directory: Path) -> None:
    directory.mkdir()
    smiles = [line.split()[0] for line in DRUGS.read_text().splitlines() if line.strip()]
    (directory / "corpus.csv").write_text("smiles\n" + "\n".join(smiles) + "\n")


def test_resumed_release_equals_uninterrupted_one(tmp_path, monkeypatch, git_fixed):
    first, second = tmp_path / "first", tmp_path / "second"
    for d in (first, second):
        make_corpus(d)

    monkeypatch.chdir(first)
    sitting(["pretrain", "--out", "weights/tiny-release", "--corpus", "corpus.csv", "--workdir", "work", *TINY])
    card = json.loads((first / "weights" / "tiny-release" / "card.json").read_text())
    verdict = check_release(first / "weights" / "tiny-release", Releases(first / "weights"))
    assert verdict.ok and not verdict.problems, verdict    # a new release needs no errata

    # the same release from the card's command, in three sittings: stopped in stage B (steps 2 + 2),
    # stopped after the first readout epoch (2 + 3 + 3 + 1), then to the end
    command = shlex.split(card["command"])
    assert command[:2] == ["hsafeat", "pretrain"] and "--stop-after" not in command and "--resume" not in command
    monkeypatch.chdir(second)
    assert "stage b step 2" in sitting([*command[1:], "--stop-after", "4"])
    assert not (second / "weights" / "tiny-release").exists()
    assert "resumed at stage b step 2" in sitting([*command[1:], "--resume", "--stop-after", "9"])
    assert not (second / "weights" / "tiny-release").exists()
    sitting([*command[1:], "--resume"])

    a, b = (load_file(str(d / "weights" / "tiny-release" / "model.safetensors")) for d in (first, second))
    assert a.keys() == b.keys() and any(k.startswith("readout.") for k in a)
    for name, tensor in a.items():
        assert tensor.equal(b[name]), name
    resumed = json.loads((second / "weights" / "tiny-release" / "card.json").read_text())
    assert {k: v for k, v in resumed.items() if k not in TIMES} == {k: v for k, v in card.items() if k not in TIMES}
    for name in ("config.json", "desc_targets.json"):
        a_file, b_file = (d / "weights" / "tiny-release" / name for d in (first, second))
        assert a_file.read_bytes() == b_file.read_bytes(), name


def test_the_checkpoint_holds_every_generator(tmp_path, monkeypatch, git_fixed):
    import torch

    make_corpus(tmp_path / "run")
    monkeypatch.chdir(tmp_path / "run")
    sitting(["pretrain", "--out", "r", "--corpus", "corpus.csv", "--workdir", "work", *TINY, "--stop-after", "3"])
    state = torch.load("work/checkpoint.pt", weights_only=True)
    assert (state["stage"], state["step"], state["batches_drawn"]) == ("b", 1, 3)
    assert set(state["global_rng"]) == {"torch", "numpy", "python"}
    assert {"rng", "gen", "opt", "model", "heads_a", "heads_b", "heads_c"} <= set(state)
