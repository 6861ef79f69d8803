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
