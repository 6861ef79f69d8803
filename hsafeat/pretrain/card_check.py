"""Cross-check release directories against their cards.

A claim is named by its path in card.json ("sha256", "objectives.init", "lineage[1]", ...). Each
check reports the claims its files or the other releases contradict. A release made before
`hsafeat pretrain` wrote whole releases may carry errata.json beside its card: corrections written
later (the card itself is never edited). Each erratum names a claim, what the card says, what is
true and how that was verified, and gives the corrected value ("corrected") or withdraws the claim
("withdrawn"); the corrected card must then pass the same checks. Weights that were never released
can be named by a correction only, by the git commit and path that hold them (checked with git
where the history is at hand)."""
from __future__ import annotations

import copy
import hashlib
import json
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from safetensors import safe_open

from hsafeat.hashing import sha256_file
from hsafeat.weights import DESC_TARGETS_FILE

ERRATA_FILE = "errata.json"
SIDECARS = ("card.json", "scores.json", ERRATA_FILE)     # beside a release, not part of it
REQUIRED = ("card_format", "command", "git", "corpus", "seeds", "train_config", "encoder_config", "readout_config",
            "final_losses", "wall_time_s", "versions", "files", "sha256")
_PATH = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@dataclass(frozen=True)
class Problem:
    claim: str
    detail: str


def _steps(path: str) -> list[str | int]:
    return [int(i) if i else key for key, i in _PATH.findall(path)]


def get_claim(card: dict, path: str, default: object = None) -> object:
    node: object = card
    for step in _steps(path):
        try:
            node = node[step]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            return default
    return node


def corrected_card(card: dict, errata: dict) -> dict:
    """The card as its errata correct it."""
    fixed = copy.deepcopy(card)
    for erratum in errata.get("errata", []):
        if "corrected" not in erratum and not erratum.get("withdrawn"):
            continue
        *parents, last = _steps(erratum["claim"])
        node = fixed
        for step in parents:
            node = node[step]
        if erratum.get("withdrawn"):
            del node[last]
        else:
            node[last] = erratum["corrected"]
    return fixed


class Releases:
    """The release directories under root, and the git history of the checkout they are in."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.dirs = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))
        self.by_sha = {json.loads((p / "card.json").read_text()).get("sha256"): p for p in self.dirs}

    def card(self, directory: Path, corrected: bool = True) -> dict:
        card = json.loads((directory / "card.json").read_text())
        errata = directory / ERRATA_FILE
        return corrected_card(card, json.loads(errata.read_text())) if corrected and errata.is_file() else card

    def git_file(self, commit: str, path: str) -> bytes | None:
        """A file as git holds it at commit (None without git or that history, e.g. in an sdist)."""
        try:
            out = subprocess.run(["git", "show", f"{commit}:{path}"], capture_output=True, cwd=self.root, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout if out.returncode == 0 else None

    def locate(self, entry: dict, allow_git: bool) -> tuple[dict | None, str | None]:
        """(the card of the weights entry names, a problem): a release with entry's sha256, or,
        for a correction, the git commit and path that hold them. ({}, None): not verifiable here."""
        sha = entry.get("sha256")
        if sha in self.by_sha:
            return self.card(self.by_sha[sha]), None
        where = entry.get("git")
        if not (allow_git and where):
            return None, f"no release under {self.root.name}/ has sha256 {sha}"
        tensors = self.git_file(where["commit"], f"{where['path']}/model.safetensors")
        if tensors is None:
            return {}, None
        if hashlib.sha256(tensors).hexdigest() != sha:
            return None, f"{where['commit'][:10]}:{where['path']} holds other tensors than sha256 {sha}"
        held = self.git_file(where["commit"], f"{where['path']}/card.json")
        return (json.loads(held) if held else {}), None


def _readout_width(tensors: Path) -> int:
    with safe_open(str(tensors), "pt") as f:
        keys = set(f.keys())
        for key in ("readout.weight", "readout.linear.weight"):
            if key in keys:
                return f.get_slice(key).get_shape()[0]
    return 0


def _encoder_tensors_equal(a: Path, b: Path) -> bool:
    """The same tensors apart from the readout (byte for byte)."""
    with safe_open(str(a), "pt") as fa, safe_open(str(b), "pt") as fb:
        keys = {k for k in fa.keys() if not k.startswith("readout.")}
        if keys != {k for k in fb.keys() if not k.startswith("readout.")}:
            return False
        return all(fa.get_tensor(k).equal(fb.get_tensor(k)) for k in keys)


def _init_entry(card: dict) -> tuple[str, dict] | None:
    """The weights the run started from, as (claim, {name, sha256, ...})."""
    if card.get("init"):
        return "init", card["init"]
    init = get_claim(card, "objectives.init")
    if isinstance(init, dict):
        return "objectives.init", init
    if isinstance(init, str):
        found = re.search(r"weights (\S+) \(sha256 ([0-9a-f]{64})\)", init)
        return "objectives.init", {"name": found[1], "sha256": found[2]} if found else {"text": init}
    return None


def card_problems(directory: Path, card: dict, releases: Releases, allow_git: bool = False) -> tuple[list[Problem], list[str]]:
    """(the claims the files or other releases contradict, the claims git history was needed for
    and is not at hand)."""
    problems: list[Problem] = []
    unverified: list[str] = []
    add = lambda claim, detail: problems.append(Problem(claim, detail))  # noqa: E731
    tensors = directory / "model.safetensors"
    config = json.loads((directory / "config.json").read_text())

    if card.get("name") != directory.name:
        add("name", f"card names {card.get('name')!r}, the directory is {directory.name!r}")
    if card.get("sha256") != sha256_file(tensors):
        add("sha256", f"model.safetensors has sha256 {sha256_file(tensors)}")
        return problems, unverified  # the other checks read the tensors
    for name, sha in (card.get("files") or {}).items():
        if not (directory / name).is_file() or sha256_file(directory / name) != sha:
            add("files", f"{name} is missing or its sha256 is not {sha}")
    if "benchmark" in card:
        add("benchmark", "scores belong in scores.json beside the card, not in it")

    # the readout: its names, its width, its targets' statistics
    names = list(config["encoder"].get("readout_descriptors") or [])
    if list(get_claim(card, "encoder_config.readout_descriptors") or []) != names:  # type: ignore[call-overload]
        add("encoder_config.readout_descriptors", "differs from config.json's readout_descriptors")
    if _readout_width(tensors) != len(names):
        add("encoder_config.readout_descriptors", f"the readout predicts {_readout_width(tensors)} values, not {len(names)}")
    if (directory / DESC_TARGETS_FILE).is_file():
        if json.loads((directory / DESC_TARGETS_FILE).read_text()).get("names") != names:
            add("encoder_config.readout_descriptors", f"{DESC_TARGETS_FILE} names other descriptors")
    if card.get("card_format", 1) >= 2 and card.get("readout") and card["readout"].get("descriptors") != names:
        add("readout.descriptors", "differs from config.json's readout_descriptors")

    # what the encoder was trained on
    source = get_claim(card, "readout.source_weights")
    if isinstance(source, dict):  # a readout fitted on released weights: the encoder is theirs
        source_dir = releases.by_sha.get(source.get("sha256"))
        if source_dir is None or source_dir.name != source.get("name"):
            add("readout.source_weights", f"no release {source.get('name')} with sha256 {source.get('sha256')}")
        else:
            if not _encoder_tensors_equal(tensors, source_dir / "model.safetensors"):
                add("readout.source_weights", f"the encoder tensors are not {source_dir.name}'s")
            if get_claim(card, "targets.descriptors") != get_claim(releases.card(source_dir), "targets.descriptors"):
                add("targets.descriptors", f"the encoder is {source_dir.name}'s, trained on its targets.descriptors")
    elif card.get("card_format", 1) >= 2 and names and get_claim(card, "targets.descriptors") != names:
        add("targets.descriptors", "the readout was fitted in the same run: it predicts exactly these targets")

    # the weights it started from and its lineage exist, and their commands are their cards'
    entries = [_init_entry(card)] if _init_entry(card) else []
    entries += [(f"lineage[{i}]", e) for i, e in enumerate(card.get("lineage") or [])]
    for claim, entry in entries:  # type: ignore[misc]
        if "sha256" not in entry:
            add(claim, "names no sha256")
            continue
        found, problem = releases.locate(entry, allow_git)
        if problem:
            add(claim, problem)
        elif found == {}:
            unverified.append(claim)
        elif entry.get("name") and (releases.root / entry["name"]).is_dir() and \
                releases.card(releases.root / entry["name"]).get("sha256") != entry["sha256"]:
            add(claim, f"{entry['name']} has another sha256 than {entry['sha256']}")
        elif found and entry.get("command") and found.get("command") != entry["command"]:
            add(claim, "the command differs from the one the card of those weights records")

    if card.get("card_format", 1) >= 2:
        problems += _release_format_problems(directory, card, names)
    return problems, unverified


def _release_format_problems(directory: Path, card: dict, names: list[str]) -> list[Problem]:
    """A release written by `hsafeat pretrain`: complete, made in place, with no errata."""
    out = [Problem(key, "missing") for key in REQUIRED if key not in card]
    command = shlex.split(card.get("command", ""))
    if command[:2] != ["hsafeat", "pretrain"] or "--out" not in command or \
            Path(command[command.index("--out") + 1]).name != directory.name:
        out.append(Problem("command", f"is not an `hsafeat pretrain` command writing {directory.name}"))
    shipped = {p.name for p in directory.iterdir() if p.name not in SIDECARS}
    if set(card.get("files") or {}) != shipped or not {"model.safetensors", "config.json"} <= shipped:
        out.append(Problem("files", f"must name exactly the release's files {sorted(shipped)}"))
    if bool(names) != (directory / DESC_TARGETS_FILE).is_file():
        out.append(Problem("files", f"a readout and {DESC_TARGETS_FILE} come together"))
    if (directory / ERRATA_FILE).exists():
        out.append(Problem("errata", "a release written by hsafeat pretrain needs no errata"))
    return out


@dataclass
class Verdict:
    problems: list[Problem]       # what the card itself claims wrongly
    unexplained: list[Problem]    # ... of those, the claims no erratum corrects or withdraws
    after_errata: list[Problem]   # what the corrected card still claims wrongly
    unverified: list[str]         # corrected claims only git history can check, not at hand here
    stale_errata: list[str]       # errata that no longer describe this card

    @property
    def ok(self) -> bool:
        return not (self.unexplained or self.after_errata or self.stale_errata)


def check_release(directory: Path, releases: Releases) -> Verdict:
    """A release passes when every claim its files contradict is corrected by an erratum written
    for this exact card, and the corrected card passes every check."""
    card = releases.card(directory, corrected=False)
    problems, _ = card_problems(directory, card, releases)
    path = directory / ERRATA_FILE
    errata = json.loads(path.read_text()) if path.is_file() else {}
    stale = []
    if errata and errata.get("card_sha256") != sha256_file(directory / "card.json"):
        stale.append(f"{ERRATA_FILE} was written for another card.json")
    for erratum in errata.get("errata", []):
        if get_claim(card, erratum["claim"]) != erratum.get("card_says"):
            stale.append(f"{erratum['claim']}: the card does not say what the erratum quotes")
    fixes = {e["claim"] for e in errata.get("errata", []) if "corrected" in e or e.get("withdrawn")}
    after, unverified = card_problems(directory, corrected_card(card, errata), releases, allow_git=True)
    return Verdict(problems, [p for p in problems if p.claim not in fixes], after, unverified, stale)
