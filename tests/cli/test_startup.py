"""What start-up costs: a plain `hsafeat embed` imports only what it uses."""
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
