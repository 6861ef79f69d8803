"""What start-up costs: a plain `hsafeat embed` imports only what it uses."""
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytest.importorskip("pandas")  # the point: pandas is installed, and embed still does not import it


def test_embed_does_not_import_pandas(tmp_path: Path) -> None:
    """pyarrow's pa.array() imports pandas on its first call (~0.4 s); the sink builds its arrays
    from buffers instead (hsafeat/arrow_build.py)."""
    smi = tmp_path / "in.smi"
    smi.write_text("CCO first\nnot_a_smiles second\nc1ccccc1O third\n")
    out = tmp_path / "out.parquet"
    code = ("import sys\nfrom hsafeat.cli import main\ntry:\n    main()\nexcept SystemExit as e:\n"
            "    print(e.code, 'pandas' in sys.modules)\n")
    for layout in ("list", "wide"):
        proc = subprocess.run([sys.executable, "-c", code, "embed", str(smi), "-o", str(out), "--layout", layout,
                               "--overwrite"], capture_output=True, text=True, timeout=300)
        assert proc.stdout.split() == ["0", "False"], proc
        table = pq.read_table(out)
        assert table.column("valid").to_pylist() == [True, False, True]
        assert table.column("id").to_pylist() == ["first", "second", "third"]
        assert table.column("error").null_count == 2


def test_command_exits_with_its_status_and_every_line_written(tmp_path: Path) -> None:
    """The command (cli.run) ends the process with os._exit (the interpreter's teardown cost
    ~0.4 s a run): stdout, block-buffered into a pipe, still arrives whole, and the status is the
    command's; atexit handlers still run."""
    proc = subprocess.run([sys.executable, "-m", "hsafeat", "info", "--json"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc
    assert json.loads(proc.stdout)["name"]
    proc = subprocess.run([sys.executable, "-m", "hsafeat", "embed", str(tmp_path / "missing.smi")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("hsafeat: error: input file not found"), proc
    code = "import atexit\natexit.register(print, 'handler ran')\nfrom hsafeat.cli import run\nrun()\n"
    proc = subprocess.run([sys.executable, "-c", code, "info"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1] == "handler ran", proc


@pytest.mark.parametrize(("code", "status"), [(None, 0), (0, 0), (3, 3), ("a message", 1)])
def test_exit_code_is_what_sys_exit_would_give(code: object, status: int) -> None:
    from hsafeat.cli import exit_code

    assert exit_code(SystemExit(code)) == status
