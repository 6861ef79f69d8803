"""The documentation runs: every fenced code block of README.md and every script in examples/ is
executed as a user would run it, in a fresh directory, with the installed `hsafeat` and `python`.
Shared helpers live here; the fixtures are in conftest.py."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
EXAMPLES = REPO / "examples"

FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
PROSE_LANGUAGES = {"", "text"}  # listings (the package layout, sample output): nothing to run


@dataclass(frozen=True)
class Block:
    language: str
    code: str
    line: int      # 1-based line of the opening fence, for failure messages
    section: str   # the nearest heading above the block

    @property
    def name(self) -> str:
        return f"{self.language}-line{self.line}-{re.sub(r'[^a-z0-9]+', '-', self.section.lower()).strip('-')}"


def fenced_blocks(markdown: str) -> list[Block]:
    """Every fenced block, in order, with the heading it stands under (a `#` line inside a block is
    a comment, not a heading)."""
    blocks, section, end = [], "top", 0
    for match in FENCE.finditer(markdown):
        headings = re.findall(r"^#+ +(.+)$", markdown[end: match.start()], re.MULTILINE)
        section, end = (headings[-1] if headings else section), match.end()
        blocks.append(Block(match.group(1).lower(), match.group(2), markdown.count("\n", 0, match.start()) + 1, section))
    return blocks


def shell_env(**extra: str) -> dict[str, str]:
    """The user's shell inside this test run: the installed `hsafeat` and `python` come first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HSAFEAT_DEBUG"] = "1"   # a failing command shows its traceback in the test report
    return env | extra


def uses_ray(code: str) -> bool:
    return re.search(r"^\s*import ray\b|--engine ray\b", code, re.MULTILINE) is not None


def run_shell(command: str, cwd: Path, timeout: float = 180, **env: str) -> subprocess.CompletedProcess[str]:
    """One command line through bash, as typed; fails the test with its output unless it exits 0."""
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=cwd, env=shell_env(**env),
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"`{command}` exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def copy_examples(into: Path) -> Path:
    """A user's checkout as far as the docs need it: examples/ beside the working directory."""
    shutil.copytree(EXAMPLES, into / "examples", ignore=shutil.ignore_patterns("*.parquet", "__pycache__"))
    return into
