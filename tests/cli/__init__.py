"""CLI tests: `hsafeat embed` / `inspect-gates` driven through typer's CliRunner, outputs read back with
pyarrow. Shared helpers live here; the `tiny_weights` fixture comes from tests/conftest.py."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner, Result

from hsafeat.cli import app

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "molecules.smi"
BAD = REPO / "tests" / "data" / "bad"

# typer >= 0.26 vendors click; its CliRunner always keeps stderr apart (result.stderr), while
# result.output interleaves both streams as a terminal would show them.
RUNNER = CliRunner()

ERROR_PREFIX = "hsafeat: error: "


@pytest.fixture(autouse=True, scope="module")
def single_thread_torch():  # noqa: ANN201
    """Imported (autouse) by each CLI test module. The molecules here are tiny, so torch's intra-op
    threads only add overhead, and on a busy 2-core machine they spin against each other (measured:
    2.2 s instead of 0.04 s for one 256-molecule batch). Restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def invoke(args: Sequence[str | Path], weights: Path | None = None, input: bytes | str | None = None) -> Result:
    argv = [str(a) for a in args]
    if weights is not None:
        argv += ["--weights", str(weights)]
    # a fixed, roomy width so that rich's table neither wraps nor truncates, whatever the caller's shell
    return RUNNER.invoke(app, argv, input=input, env={"COLUMNS": "160"})


def assert_no_crash(result: Result) -> None:
    """No traceback text, and nothing escaped the CLI's own error handling: under CliRunner an
    unhandled exception shows up as result.exception (it never reaches hsafeat.cli.main)."""
    assert "Traceback" not in result.output, result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"unhandled {type(result.exception).__name__}: {result.exception}") from result.exception


def assert_ok(result: Result) -> None:
    assert_no_crash(result)
    assert result.exit_code == 0, result.output


def assert_one_line_error(result: Result, code: int = 2, *fragments: str) -> str:
    """Exit `code`, exactly one stderr line starting 'hsafeat: error:', nothing on stdout."""
    assert_no_crash(result)
    assert result.exit_code == code, f"exit {result.exit_code}, expected {code}: {result.output}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one stderr line, got: {result.stderr!r}"
    line = lines[0]
    assert line.startswith(ERROR_PREFIX), line
    for fragment in fragments:
        assert fragment.lower() in line.lower(), f"{fragment!r} not in {line!r}"
    assert result.stdout == "", result.stdout
    return line


def read(path: Path, columns: list[str] | None = None) -> pa.Table:
    return pq.read_table(path, columns=columns)


def metadata(path: Path) -> dict:
    return json.loads(pq.read_schema(path).metadata[b"hsafeat"])


def embedding_matrix(table: pa.Table, column: str) -> np.ndarray:
    """n x D float32 with NaN rows for nulls (uses .values, never .flatten(), which skips nulls)."""
    col = table.column(column).combine_chunks()
    assert pa.types.is_fixed_size_list(col.type), col.type
    out = col.values.to_numpy(zero_copy_only=False).reshape(len(col), col.type.list_size).astype(np.float32)
    out[~np.asarray(col.is_valid())] = np.nan
    return out


def data_lines(path: Path) -> list[str]:
    """The lines that must become rows, counted independently of hsafeat's reader: .smi comment lines
    (first non-blank character '#') and a CSV/TSV header are not rows; blank lines are, except a run
    of blank lines at the very end of the file (see tests/data/README.md)."""
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    lines = [ln.rstrip("\r") for ln in raw.decode("utf-8", "replace").split("\n")]
    if path.name.endswith((".csv", ".tsv")):
        lines = lines[1:]
    else:
        lines = [ln for ln in lines if not ln.strip().startswith("#")]
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def tmp_leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if "tmp" in p.name.lower() or p.name.endswith(".parts"))
