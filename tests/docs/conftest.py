from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs import copy_examples, run_shell, shell_env

# The file the README's recipes read, made as the README's quick start makes it.
EMBED_EXAMPLE = "hsafeat embed examples/molecules.smi -o molecules.parquet"


@pytest.fixture(scope="session")
def example_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = copy_examples(tmp_path_factory.mktemp("embedded"))
    run_shell(EMBED_EXAMPLE, home)
    return home / "molecules.parquet"


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    """A fresh working directory holding examples/, as a user's checkout would."""
    return copy_examples(tmp_path)


@pytest.fixture
def embedded_dir(user_dir: Path, example_parquet: Path) -> Path:
    """The same, after the quick start: molecules.parquet is there to be read."""
    shutil.copy(example_parquet, user_dir / example_parquet.name)
    return user_dir


RAY_TOKEN = Path.home() / ".ray" / "auth_token"
# Starts a local Ray, prints its address, and keeps it up until its stdin closes.
RAY_HEAD = """import sys, ray
context = ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
print(context.address_info["gcs_address"], flush=True)
sys.stdin.read()
ray.shutdown()"""


@pytest.fixture(scope="session")
def ray_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One local Ray for every block that uses Ray: a start costs ~10 s (far more on a loaded
    machine), so the blocks' own `ray.init()` and `hsafeat embed --engine ray` join this one
    through RAY_ADDRESS, as they would join a cluster. Its workers resolve relative paths in
    their own working directory (a cluster's nodes would too): a temporary one."""
    head = subprocess.Popen([sys.executable, "-c", RAY_HEAD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=shell_env(), cwd=tmp_path_factory.mktemp("ray"))
    address = head.stdout.readline().strip() if head.stdout else ""
    try:
        assert address, f"the local Ray did not start (exit {head.poll()})"
        # A local Ray authenticates drivers with the machine's token (~/.ray/auth_token) when one
        # exists; a driver given an explicit address uses it only in token mode.
        yield {"RAY_ADDRESS": address} | ({"RAY_AUTH_MODE": "token"} if RAY_TOKEN.exists() else {})
    finally:
        if head.stdin:
            head.stdin.close()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
