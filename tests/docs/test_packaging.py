"""A lean repository and wheel: the wheel ships the default weights only and stays under 15 MB, no
model file is kept outside weights/, and the docs name only paths that exist."""
from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

from hsafeat.weights import DEFAULT_WEIGHTS
from tests.docs import README, REPO

WHEEL_LIMIT = 15 * 2**20
MODEL_SUFFIXES = {".safetensors", ".pt", ".pth", ".ckpt", ".onnx", ".npz", ".npy", ".pkl", ".bin", ".h5"}
TEST_DATA = "tests/data/"
TEST_DATA_LIMIT = 2**20   # small golden arrays and bad-input files are test data, not models
REMOVED_DIRS = {"candidates"}   # experiments, in git history only
DOCS = [README, REPO / "BENCHMARKS.md", *sorted((REPO / "docs").glob("*.md")), REPO / "weights" / "README.md"]
CITED_SECTION = re.compile(r'\b(BENCHMARKS\.md|DESIGN\.md)[,:]?\s*\(?"([^"]+)"')  # BENCHMARKS.md, "Memory"


def wheel_config() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]


def tracked_files() -> list[str]:
    """The git tree (what a clone holds); a source tree without git is walked instead."""
    if (REPO / ".git").exists():
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True)
        return [p for p in listed.stdout.split("\0") if p and (REPO / p).is_file()]
    return [str(p.relative_to(REPO)) for p in REPO.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(REPO).parts)]


def test_wheel_ships_the_default_weights_only() -> None:
    assert wheel_config()["force-include"] == {f"weights/{DEFAULT_WEIGHTS}": f"hsafeat/weights/{DEFAULT_WEIGHTS}"}


def test_wheel_contents_fit_the_limit() -> None:
    """An upper bound on the wheel: its files' sizes before compression."""
    package = [p for p in (REPO / "hsafeat").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    weights = [p for p in (REPO / "weights" / DEFAULT_WEIGHTS).rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in package + weights)
    assert total <= WHEEL_LIMIT, f"the wheel's files hold {total / 2**20:.1f} MiB"


def test_no_model_file_outside_weights() -> None:
    strays = [p for p in tracked_files() if Path(p).suffix in MODEL_SUFFIXES and not p.startswith("weights/")
              and not (p.startswith(TEST_DATA) and (REPO / p).stat().st_size <= TEST_DATA_LIMIT)]
    assert not strays, f"model files outside weights/: {strays}"


def test_docs_name_only_paths_that_exist() -> None:
    """Every repository path in backticks (`benchmarks/throughput.py`, `tests/cli/test_faults.py::name`)."""
    top_dirs = {p.name for p in REPO.iterdir() if p.is_dir() and not p.name.startswith(".")} | REMOVED_DIRS
    tops = "|".join(sorted(map(re.escape, top_dirs)))
    path = re.compile(rf"^(?:{tops})/[\w./-]*")
    missing = []
    for doc in DOCS:
        for span in re.findall(r"`([^`\n]+)`", doc.read_text()):
            for word in span.split():
                found = path.match(word)
                if found and not (REPO / found.group(0).rstrip(".,;:")).exists():
                    missing.append(f"{doc.relative_to(REPO)}: {found.group(0)}")
    assert not missing, "\n".join(missing)


def test_cited_doc_sections_exist() -> None:
    """`(docs/DESIGN.md, "Memory")` in the docs or the package names a heading that exists."""
    headings = {name: [h.replace("`", "").lower() for h in re.findall(r"^#+ +(.+)$", path.read_text(), re.MULTILINE)]
                for name, path in (("BENCHMARKS.md", REPO / "BENCHMARKS.md"), ("DESIGN.md", REPO / "docs" / "DESIGN.md"))}
    citing = DOCS + sorted((REPO / "hsafeat").rglob("*.py")) + sorted((REPO / "benchmarks").glob("*.py"))
    missing = []
    for path in citing:
        for doc, section in CITED_SECTION.findall(path.read_text()):
            section = " ".join(section.split()).replace("`", "").lower()
            if not any(h.startswith(section) for h in headings[doc]):
                missing.append(f"{path.relative_to(REPO)}: {doc}, {section!r}")
    assert not missing, "\n".join(missing)
