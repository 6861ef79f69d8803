"""Mordred targets (v3): computed once per molecule in shards a killed run keeps, joined to the
right molecules, and refused when a shard was made for other molecules."""
import os

import numpy as np
import pytest

pytest.importorskip("mordred")

from hsafeat.pretrain import mordred_targets as mt  # noqa: E402
from hsafeat.pretrain.corpus import join_columns, make_example  # noqa: E402

SMILES = ["CCO", "not a smiles", "c1ccccc1C(=O)[O-].[Na+]", "C[C@H](N)C(=O)O", "CC(C)Cc1ccc(cc1)C(C)C(=O)O"]


@pytest.fixture
def small_shards(monkeypatch):
    monkeypatch.setattr(mt, "SHARD_SIZE", 2)


def test_rows_names_and_failures():
    names = mt.mordred_names()
    assert len(names) > 1000 and all(n.startswith("mordred:") for n in names)
    assert not any(n.split(":", 1)[1].startswith(("BCUT", "ETA")) for n in names)   # skipped modules
    row = mt.mordred_row("CCO")
    assert row.dtype == np.float32 and row.shape == (len(names),) and np.isfinite(row).mean() > 0.5
    assert np.isnan(mt.mordred_row("not a smiles")).all()
    assert row[names.index("mordred:nHeavyAtom")] == 3


def test_shards_resume_and_refuse_other_molecules(tmp_path, small_shards):
    names, values = mt.compute_shards(SMILES, tmp_path, workers=1)
    assert values.shape == (len(SMILES), len(names))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard_00000.npz", "shard_00001.npz", "shard_00002.npz"]
    np.testing.assert_array_equal(values[3], mt.mordred_row(SMILES[3]))
    # a second call reads every shard back and writes none
    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    os.utime(tmp_path / "shard_00001.npz", ns=(1, 1))
    stamps["shard_00001.npz"] = 1
    _, again = mt.compute_shards(SMILES, tmp_path, workers=1)
    np.testing.assert_array_equal(again, values)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == stamps
    # a shard made for other molecules is recomputed, not reused
    other = ["CCN", *SMILES[1:]]
    _, changed = mt.compute_shards(other, tmp_path, workers=1)
    np.testing.assert_array_equal(changed[0], mt.mordred_row("CCN"))
    np.testing.assert_array_equal(changed[2:], values[2:])


def test_join_appends_each_molecules_own_row():
    examples = [ex for ex in (make_example(s, targets="v2") for s in SMILES) if ex is not None]
    extra = np.arange(len(SMILES) * 2, dtype=np.float32).reshape(len(SMILES), 2)
    joined = join_columns(examples, SMILES, extra)
    assert [ex.smiles for ex in joined] == [s for s in SMILES if s != "not a smiles"]
    for ex, before in zip(joined, examples):
        i = SMILES.index(ex.smiles)
        np.testing.assert_array_equal(ex.desc[-2:], extra[i])
        np.testing.assert_array_equal(ex.desc[:-2], before.desc)
