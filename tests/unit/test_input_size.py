"""The heavy-atom count that decides whether a small input gets a featurization worker."""
import io
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from rdkit import Chem

from hsafeat import cores
from hsafeat.input_size import estimate_heavy_atoms, heavy_atoms_in_smiles
from hsafeat.io import open_input

DRUGS = Path(__file__).parents[1] / "data" / "drugs.smi"


def drug_smiles() -> list[str]:
    return [ln.split()[0] for ln in DRUGS.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def test_count_equals_rdkit_on_the_test_drugs() -> None:
    for smiles in drug_smiles():
        mol = Chem.MolFromSmiles(smiles)
        if mol is not None:
            assert heavy_atoms_in_smiles(smiles) == mol.GetNumHeavyAtoms(), smiles


@pytest.mark.parametrize(("smiles", "heavy"), [
    ("[H]C([H])([H])O", 2), ("[2H]OC", 2), ("[H+].[Cl-]", 1),   # hydrogens written as atoms
    ("[Hg]Cl", 2), ("[He]", 1), ("ClCBr", 3), ("[nH]1cccc1", 5),  # not hydrogens; two-letter halogens
    ("[C@@H](F)(Cl)Br", 4), ("[Na+].[O-]C(=O)C", 5),
])
def test_count_of_written_atoms(smiles: str, heavy: int) -> None:
    assert heavy_atoms_in_smiles(smiles) == heavy == Chem.MolFromSmiles(smiles).GetNumHeavyAtoms()


def test_estimate_reads_a_twin_and_stops_at_max_rows(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    path = tmp_path / "in.csv"
    path.write_text("id,smiles\na,CCO\nb,c1ccccc1\nc,not a smiles\n")
    source = open_input(str(path))
    assert estimate_heavy_atoms(source, max_rows=3) == 3 + 6 + 4   # 'not a smiles': n, o and two s
    assert estimate_heavy_atoms(source, max_rows=2) is None       # longer than max_rows
    assert [r.smiles for r in source.rows()][:2] == ["CCO", "c1ccccc1"]   # the source itself is unread
    monkeypatch.setattr(sys, "stdin", SimpleNamespace(buffer=io.BytesIO(b"CCO\n")))
    assert estimate_heavy_atoms(open_input("-"), max_rows=10) is None   # stdin is read once, by the run


def test_large_molecules_get_a_worker_small_files_of_small_ones_do_not(monkeypatch) -> None:  # noqa: ANN001
    from hsafeat.cli import SMALL_INPUT_ATOMS, resolve_workers

    monkeypatch.setattr(cores, "available_cores", lambda: 2)
    assert resolve_workers(None, 460, heavy_atoms=460 * 49) == 1    # the 5 % largest drugs: worth a worker
    assert resolve_workers(None, 200, heavy_atoms=200 * 25) == 0
    assert resolve_workers(None, 1500, heavy_atoms=1500 * 6) == 0   # many rows, little work
    assert resolve_workers(None, 1500, heavy_atoms=SMALL_INPUT_ATOMS + 1) == 1
    assert resolve_workers(0, 460, heavy_atoms=460 * 49) == 0        # explicit --workers wins
