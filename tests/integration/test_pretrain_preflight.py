"""`hsafeat pretrain` refuses a run that cannot finish before any work (README, "Error policy":
one line, exit 2, no workdir made, no corpus featurized), and stops on SIGINT or SIGTERM at a step
boundary with a checkpoint that --resume continues exactly."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from hsafeat.cli import app

DRUGS = Path(__file__).resolve().parent.parent / "data" / "drugs.smi"   # 30 molecules
TINY = ["--steps-a", "2", "--steps-b", "2", "--batch-size", "8", "--d-model", "16", "--d-out", "16",
        "--vocab-size", "32", "--readout-hidden", "8", "--readout-epochs", "2"]


def invoke(*args: str):  # noqa: ANN201
    return CliRunner().invoke(app, ["pretrain", *args])


def error_lines(result) -> list[str]:  # noqa: ANN001
    return [line for line in result.stderr.splitlines() if line.strip()]


def refused(result, *words: str) -> str:  # noqa: ANN001
    """One line, exit 2, naming what is wrong."""
    lines = error_lines(result)
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("hsafeat: error: "), lines
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def here(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- outputs: checked before the workdir is made (formerly after every stage and the readout) ---

def test_an_existing_non_empty_out_is_refused_before_any_work(here):
    (here / "rel").mkdir()
    (here / "rel" / "notes.txt").write_text("mine")
    refused(invoke("--out", "rel", "--corpus", str(DRUGS), "--workdir", "work", *TINY), "--out rel", "not empty")
    assert not (here / "work").exists() and (here / "rel" / "notes.txt").read_text() == "mine"


def test_out_and_workdir_must_differ(here):
    refused(invoke("--out", "x", "--corpus", str(DRUGS), "--workdir", "x", *TINY), "--workdir x", "--out x")
    refused(invoke("--out", "x", "--corpus", str(DRUGS), "--workdir", "x/work", *TINY), "--workdir x/work")
    assert not (here / "x").exists()


def test_out_that_is_a_file_is_refused(here):
    (here / "rel").write_text("a file")
    refused(invoke("--out", "rel", "--corpus", str(DRUGS), "--workdir", "work", *TINY), "not a directory")
    assert not (here / "work").exists()


def test_out_that_cannot_be_created_is_refused(here):
    if not Path("/proc/self").exists():
        pytest.skip("needs /proc")
    refused(invoke("--out", "/proc/hsafeat-release", "--corpus", str(DRUGS), "--workdir", "work", *TINY),
            "--out /proc/hsafeat-release cannot be created")
    assert not (here / "work").exists()


def test_unknown_recommended_column_is_refused_before_any_work(here):
    line = refused(invoke("--out", "rel", "--corpus", str(DRUGS), "--workdir", "work", *TINY,
                          "--recommended-column", "bogus"), "--recommended-column bogus")
    assert "desc_pred" in line and "pooled" in line   # it lists the columns the release writes
    none = refused(invoke("--out", "rel", "--corpus", str(DRUGS), "--workdir", "work", *TINY, "--readout", "none",
                          "--recommended-column", "desc_pred"), "--recommended-column desc_pred")
    assert "desc_pred" not in none.split("writes")[1]
    assert not (here / "work").exists() and not list(here.glob(".rel*"))


# --- options: checked before the corpus is featurized ---

@pytest.mark.parametrize(("option", "value", "rule"), [
    ("--lr", "-1", "--lr must be a learning rate > 0"),
    ("--lr-c", "0", "--lr-c must be a learning rate > 0"),
    ("--readout-lr", "nan", "--readout-lr must be a learning rate > 0"),
    ("--d-model", "30", "--d-model must be a positive multiple of 4"),
    ("--d-model", "0", "--d-model must be a positive multiple of 4"),
    ("--d-out", "0", "--d-out must be >= 1"),
])
def test_impossible_option_values_are_refused_before_any_work(here, option, value, rule):
    refused(invoke("--out", "rel", "--corpus", str(DRUGS), "--workdir", "work", *TINY, option, value), rule)
    assert not (here / "work").exists()


def test_a_run_that_trains_nothing_is_refused(here):
    refused(invoke("--out", "rel", "--corpus", str(DRUGS), "--workdir", "work", *TINY, "--steps-a", "0",
                   "--steps-b", "0", "--steps-c", "0", "--readout", "none"), "nothing to train")
    assert not (here / "work").exists() and not (here / "rel").exists()


# --- corpora with too few molecules: how many were read and parsed, and the minimum ---

@pytest.mark.parametrize(("text", "words"), [
    ("smiles\n", ["0 molecule lines read", "at least 3"]),                       # header only
    ("CCO\n", ["1 molecule line read", "at least 3"]),                             # one molecule
    ("bogus\nxx(\n[Qq]\n", ["3 molecule lines read, 0 parsed", "first field", "at least 3"]),
    ("id,smiles\nm1,CCO\nm2,CCN\nm3,c1ccccc1\n", ["4 molecule lines read, 0 parsed", "'smiles' as column 2"]),
])
def test_a_corpus_without_enough_molecules_is_refused_in_one_line(here, text, words):
    (here / "corpus.csv").write_text(text)
    refused(invoke("--out", "rel", "--corpus", "corpus.csv", "--workdir", "work", *TINY), *words)
    assert not (here / "rel").exists() and not (here / "work" / "corpus.npz").exists()


def test_the_minimum_without_a_readout_is_two(here):
    (here / "corpus.csv").write_text("CCO\n")
    refused(invoke("--out", "rel", "--corpus", "corpus.csv", "--workdir", "work", *TINY, "--readout", "none"),
            "at least 2")


# --- what a finished run writes ---

def test_the_card_says_when_n_molecules_exceeds_the_corpus(here):
    result = invoke("--out", "rel", "--corpus", str(DRUGS), "--workdir", "work", *TINY, "--n-molecules", "1000")
    assert result.exit_code == 0, result.output
    card = json.loads((here / "rel" / "card.json").read_text())
    assert card["corpus"]["subset"] == "all 30 lines (--n-molecules asked for 1000)"
    assert card["corpus"]["n_molecules_used"] == 30
    umask = os.umask(0)
    os.umask(umask)
    assert {p.stat().st_mode & 0o777 for p in (here / "rel").iterdir()} == {0o666 & ~umask}
    # a subset smaller than the corpus keeps the words of the releases made so far
    result = invoke("--out", "rel2", "--corpus", str(DRUGS), "--workdir", "work2", *TINY, "--n-molecules", "12")
    assert result.exit_code == 0, result.output
    card = json.loads((here / "rel2" / "card.json").read_text())
    assert card["corpus"]["subset"] == "seeded random subset (seed 0) of 12 lines, in file order"


def test_stop_after_says_so_once_and_resume_without_a_checkpoint_says_so(here):
    stopped = invoke("--out", "rel", "--corpus", str(DRUGS), "--workdir", "work", *TINY, "--stop-after", "1")
    assert stopped.exit_code == 0 and stopped.output.count("stopped after") == 1, stopped.output
    fresh = invoke("--out", "rel", "--corpus", str(DRUGS), "--workdir", "other", *TINY, "--resume")
    assert fresh.exit_code == 0, fresh.output
    assert "nothing to resume in other (no checkpoint)" in fresh.output and (here / "rel" / "card.json").exists()


# --- SIGINT / SIGTERM: finish the step, checkpoint, exit 130; --resume equals an uninterrupted run ---

def signal_after_first_call(monkeypatch, owner, method: str, signum: int) -> None:  # noqa: ANN001
    """The first call of owner.method sends this process `signum` (while the step runs)."""
    original, sent = getattr(owner, method), []

    def wrapped(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if not sent:
            sent.append(signum)
            os.kill(os.getpid(), signum)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(owner, method, wrapped)


@pytest.fixture
def own_handlers():
    """SIGTERM raises KeyboardInterrupt in this process while the test runs (were the run's own
    handling missing, the test fails instead of ending pytest); the handlers are restored after."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def interrupt(signum, frame):  # noqa: ANN001, ANN202
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    yield
    for s, handler in before.items():
        signal.signal(s, handler)


def test_a_signal_checkpoints_at_the_step_and_resume_equals_an_uninterrupted_run(here, monkeypatch, own_handlers):
    import torch

    from hsafeat.pretrain.loop import Trainer
    from hsafeat.pretrain.readout_fit import ReadoutFit

    monkeypatch.setattr("hsafeat.pretrain.run.git_state", lambda: {"commit": "0" * 40, "dirty": False})
    # what SIGINT did before (a background job of a non-interactive shell starts with it ignored)
    sigint_before = signal.getsignal(signal.SIGINT)
    args = ["--corpus", str(DRUGS), *TINY, "--steps-c", "2", "--targets", "v2"]
    assert invoke("--out", "whole", "--workdir", "work1", *args).exit_code == 0

    with monkeypatch.context() as m:  # SIGTERM while stage B's first step runs
        signal_after_first_call(m, Trainer, "step_b", signal.SIGTERM)
        first = invoke("--out", "parts", "--workdir", "work2", *args)
    assert first.exit_code == 130, first.output
    assert error_lines(first) == ["hsafeat: error: interrupted after 3 steps (stage b step 1), checkpoint written: "
                    "the same command with --resume continues from work2"]
    state = torch.load(here / "work2" / "checkpoint.pt", weights_only=True)
    assert (state["stage"], state["step"]) == ("b", 1)

    with monkeypatch.context() as m:  # SIGINT during the readout's first epoch
        signal_after_first_call(m, ReadoutFit, "run_epoch", signal.SIGINT)
        second = invoke("--out", "parts", "--workdir", "work2", *args, "--resume")
    assert second.exit_code == 130 and "--resume" in error_lines(second)[0], second.output
    assert len(error_lines(second)) == 1 and not (here / "parts").exists()
    assert torch.load(here / "work2" / "readout.pt", weights_only=True)["epoch"] == 1

    third = invoke("--out", "parts", "--workdir", "work2", *args, "--resume")
    assert third.exit_code == 0, third.output
    a, b = load_file(str(here / "whole" / "model.safetensors")), load_file(str(here / "parts" / "model.safetensors"))
    assert a.keys() == b.keys() and any(k.startswith("readout.") for k in a)
    for name, tensor in a.items():
        assert tensor.equal(b[name]), name
    assert signal.getsignal(signal.SIGINT) is sigint_before   # the run's handlers are gone
    assert not (here / ".parts.partial").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_real_signal_exits_130_with_one_line_and_a_checkpoint(tmp_path, signum):
    """The command in its own process, signalled while it trains."""
    work = tmp_path / "work"
    cmd = [sys.executable, "-m", "hsafeat", "pretrain", "--out", str(tmp_path / "rel"), "--corpus", str(DRUGS),
           "--workdir", str(work), *TINY, "--steps-a", "100000"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    log = work / "train.log"
    try:
        deadline = time.time() + 120
        # stage A's progress records reach the log every 20 steps: then it trains
        while proc.poll() is None and time.time() < deadline and not (log.exists() and "'stage': 'a'" in log.read_text()):
            time.sleep(0.1)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("hsafeat: error: interrupted after ") and "--resume" in lines[0], err
    assert (work / "checkpoint.pt").exists() and not (tmp_path / "rel").exists()
