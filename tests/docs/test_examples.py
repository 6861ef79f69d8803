"""Every script in examples/ runs as its docstring says ("Run:" lines, from the repository root), in
a fresh directory holding a copy of examples/. Optional libraries are installed by the test extra,
so nothing an example offers may be skipped here."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.docs import EXAMPLES, run_shell

DATA_SUFFIXES = {".smi"}  # example inputs, not scripts
SCRIPTS = sorted(p for p in EXAMPLES.iterdir() if p.is_file() and p.suffix not in DATA_SUFFIXES)


def run_lines(script: Path) -> list[str]:
    """The commands after "Run:" in the module docstring, one per line, up to the first line that
    is not a command."""
    doc = ast.get_docstring(ast.parse(script.read_text())) or ""
    _, found, rest = doc.partition("Run:")
    assert found, f"{script.name}: its docstring has no 'Run:' line"
    lines = []
    for line in rest.splitlines():
        if not line.strip().startswith(("python ", "hsafeat ")):
            break
        lines.append(line.strip())
    return lines


def test_every_example_is_a_python_script() -> None:
    assert SCRIPTS and all(p.suffix == ".py" for p in SCRIPTS), f"teach tests/docs/test_examples.py to run {SCRIPTS}"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_example_runs_as_documented(script: Path, user_dir: Path) -> None:
    commands = run_lines(script)
    assert any(c.startswith(f"python examples/{script.name}") for c in commands), f"{script.name}: no Run: line runs it"
    for command in commands:
        done = run_shell(command, user_dir)
    assert "skipped" not in done.stdout.lower(), done.stdout
