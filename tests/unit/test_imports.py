"""Imports flow one way: chem never imports torch, nn never imports rdkit."""
import subprocess
import sys


def _loaded_after(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_chem_does_not_import_torch():
    assert "torch" not in _loaded_after("hsafeat.chem")


def test_nn_does_not_import_rdkit():
    assert "rdkit" not in _loaded_after("hsafeat.nn")


def test_cli_help_is_light():
    loaded = _loaded_after("hsafeat.cli")
    assert "torch" not in loaded and "rdkit" not in loaded


def test_embedding_imports_nothing_slow(tmp_path):
    """torch_geometric (torch._dynamo and its datasets) and sympy (torch's shape checks) cost
    ~3 s of start-up together; embedding a file loads neither."""
    smi = tmp_path / "in.smi"
    smi.write_text("CCO\nc1ccccc1O\n")
    code = ("import sys; from hsafeat.cli import app; sys.argv = ['hsafeat', 'embed', sys.argv[1], '-o', sys.argv[2]]\n"
            "try:\n    app()\nexcept SystemExit:\n    pass\n"
            "print('slow imports:', *sorted(m for m in sys.modules if m.split('.')[0] in ('torch_geometric', 'sympy')))")
    out = subprocess.run([sys.executable, "-c", code, str(smi), str(tmp_path / "out.parquet")],
                         capture_output=True, text=True, check=True)
    assert (tmp_path / "out.parquet").exists()
    assert out.stdout.splitlines()[-1] == "slow imports:", out.stdout
