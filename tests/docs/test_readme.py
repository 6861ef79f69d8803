"""Every fenced code block of README.md runs. Python blocks run as scripts in a directory where the
files they read exist (molecules.parquet, made by the quick start); bash blocks run their `hsafeat`
commands in a fresh directory holding examples/. The install prefix of a bash line is stripped
(these tests run in an installed environment) after checking that it is exactly a documented
install. README.md is parsed when the tests are collected, so whatever it says now is what runs."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs import PROSE_LANGUAGES, README, REPO, Block, fenced_blocks, run_shell, uses_ray

INSTALLS = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 .",            # a user
    'python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 -e ".[test]"',  # a developer, as CI
)
HSAFEAT_COMMAND = re.compile(r"^(\w+=\S* +)*hsafeat( |$)")  # optionally after VAR=value assignments
CI_SCRIPT = REPO / ".ci" / "run"

CODE = [b for b in fenced_blocks(README.read_text()) if b.language not in PROSE_LANGUAGES]


def by_language(language: str) -> list[Block]:
    return [b for b in CODE if b.language == language]


def command_lines(block: Block) -> list[str]:
    """A bash block's commands, one per line: continuations joined, comments and blank lines dropped."""
    text = re.sub(r"\\\n\s*", " ", block.code)
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def without_install(line: str) -> str:
    """The line after its install prefix, which must be one of INSTALLS exactly."""
    if not line.startswith("python3 -m venv"):
        return line
    for install in INSTALLS:
        if line == install:
            return ""
        if line.startswith(install + " && "):
            return line[len(install) + len(" && "):]
    raise AssertionError(f"an install that is not the documented one: {line!r}; documented: {INSTALLS}")


def test_readme_code_is_python_or_bash() -> None:
    assert by_language("python") and by_language("bash"), "README.md lost its python or bash examples"
    unknown = {b.language for b in CODE} - {"python", "bash"}
    assert not unknown, f"README code blocks in {unknown}: teach tests/docs/test_readme.py to run them"


def test_the_developer_install_is_what_ci_runs() -> None:
    pip_line = INSTALLS[1].rsplit(" && ", 1)[1]
    assert pip_line in CI_SCRIPT.read_text().splitlines(), f".ci/run does not install as the README says: {pip_line}"


@pytest.mark.parametrize("block", by_language("python"), ids=lambda b: b.name)
def test_python_block_runs(block: Block, embedded_dir: Path, request: pytest.FixtureRequest) -> None:
    (embedded_dir / "readme_block.py").write_text(block.code)
    env = request.getfixturevalue("ray_env") if uses_ray(block.code) else {}
    run_shell("python readme_block.py", embedded_dir, **env)


@pytest.mark.parametrize("block", by_language("bash"), ids=lambda b: b.name)
def test_bash_block_runs(block: Block, user_dir: Path, request: pytest.FixtureRequest) -> None:
    """`hsafeat` commands run; any other command must be one CI runs itself (the test suite)."""
    ci_lines = {line.strip() for line in CI_SCRIPT.read_text().splitlines()}
    env = request.getfixturevalue("ray_env") if uses_ray(block.code) else {}
    assert command_lines(block), f"README line {block.line}: an empty bash block"
    for line in command_lines(block):
        for command in filter(None, without_install(line).split(" && ")):
            if HSAFEAT_COMMAND.match(command):
                run_shell(command, user_dir, **env)
            else:
                assert command in ci_lines, f"README line {block.line}: `{command}` is neither hsafeat nor run by CI"
