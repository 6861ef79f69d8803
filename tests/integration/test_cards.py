"""Every shipped weights directory agrees with its card: the sha256 of the tensors and of every
file the card lists, the readout's descriptor names against its output width and
desc_targets.json, the encoder a readout was fitted on, and every sha the card names for the
weights it came from. The releases made before `hsafeat pretrain` wrote cards by code carry
known errors; each is corrected in errata.json beside the card (the card is never edited), and a
claim is accepted only when an erratum corrects it and the corrected card passes the same checks."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from hsafeat.pretrain.card_check import ERRATA_FILE, Releases, check_release

WEIGHTS = Path(__file__).resolve().parent.parent.parent / "weights"
RELEASES = Releases(WEIGHTS)
NAMES = [d.name for d in RELEASES.dirs]


def in_git_history() -> bool:
    out = subprocess.run(["git", "log", "-1", "--format=%H", "--", "."], capture_output=True, text=True, cwd=WEIGHTS)
    return out.returncode == 0 and bool(out.stdout.strip())


def test_every_release_directory_is_checked():
    assert {"hsanet-moses-v1", "hsanet-moses-v2", "hsanet-moses-v2.1", "hsanet-moses-v2.2"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_card_agrees_with_its_files_and_lineage(name):
    verdict = check_release(WEIGHTS / name, RELEASES)
    assert not verdict.stale_errata, verdict.stale_errata
    assert not verdict.unexplained, f"claims no erratum corrects: {verdict.unexplained}"
    assert not verdict.after_errata, f"the corrected card still fails: {verdict.after_errata}"


@pytest.mark.parametrize("name", NAMES)
def test_corrections_naming_unreleased_weights_hold_in_git(name):
    """Weights that were never released are named by the commit and path that hold them."""
    verdict = check_release(WEIGHTS / name, RELEASES)
    if verdict.unverified and not in_git_history():
        pytest.skip(f"git history is not at hand to check {verdict.unverified}")
    assert not verdict.unverified


@pytest.mark.parametrize("name", NAMES)
def test_card_is_not_edited_after_its_release_commit(name):
    """git log of card.json shows the release commit only; earlier edits are listed in errata."""
    if not in_git_history():
        pytest.skip("no git history")
    out = subprocess.run(["git", "log", "--reverse", "--format=%H", "--", f"{name}/card.json"],
                         capture_output=True, text=True, cwd=WEIGHTS, check=True)
    commits = out.stdout.split()
    errata = WEIGHTS / name / ERRATA_FILE
    history = json.loads(errata.read_text())["card_history"] if errata.is_file() else None
    if history is None:
        assert len(commits) <= 1, f"card.json changed after its release: {commits}"
    else:
        assert commits[0] == history["release_commit"]
        assert commits[1:] == [e["commit"] for e in history["edited_after_release"]]


@pytest.fixture
def weights_copy(tmp_path):
    """The shipped releases outside the repository (no git history there)."""
    root = tmp_path / "weights"
    for name in NAMES:
        shutil.copytree(WEIGHTS / name, root / name)
    return root


def test_the_checks_catch_what_the_errata_correct(weights_copy):
    v22 = weights_copy / "hsanet-moses-v2.2"
    errata = json.loads((v22 / ERRATA_FILE).read_text())
    (v22 / ERRATA_FILE).unlink()
    verdict = check_release(v22, Releases(weights_copy))
    assert {"benchmark", "objectives.init", "lineage[1]", "targets.descriptors"} == {p.claim for p in verdict.unexplained}

    # a correction that does not pass the same check is not accepted
    wrong = dict(errata, errata=[dict(e, corrected=e["card_says"]) if e["claim"] == "targets.descriptors" else e
                                 for e in errata["errata"]])
    (v22 / ERRATA_FILE).write_text(json.dumps(wrong))
    assert [p.claim for p in check_release(v22, Releases(weights_copy)).after_errata] == ["targets.descriptors"]

    # errata quote the card they correct; outside git the unreleased weights cannot be checked
    (v22 / ERRATA_FILE).write_text(json.dumps(errata))
    verdict = check_release(v22, Releases(weights_copy))
    assert verdict.ok and verdict.unverified == ["objectives.init", "lineage[1]"]
    card = json.loads((v22 / "card.json").read_text())
    (v22 / "card.json").write_text(json.dumps({**card, "seed": 7}, indent=1))
    assert check_release(v22, Releases(weights_copy)).stale_errata


def test_the_checks_catch_files_that_do_not_match(weights_copy):
    v1 = weights_copy / "hsanet-moses-v1"
    assert check_release(v1, Releases(weights_copy)).ok
    tensors = bytearray((v1 / "model.safetensors").read_bytes())
    tensors[-1] ^= 1  # one bit of the last weight
    (v1 / "model.safetensors").write_bytes(bytes(tensors))
    assert [p.claim for p in check_release(v1, Releases(weights_copy)).unexplained] == ["sha256"]

    v21 = weights_copy / "hsanet-moses-v2.1"
    names = json.loads((v21 / "config.json").read_text())["encoder"]["readout_descriptors"]
    (v21 / "desc_targets.json").write_text(json.dumps({"names": names[:-1], "mean": [], "std": []}))
    claims = [p.claim for p in check_release(v21, Releases(weights_copy)).unexplained]
    assert claims == ["encoder_config.readout_descriptors"]
