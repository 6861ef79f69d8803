"""desc_pred in real units: value * std + mean from the release's desc_targets.json sidecar, the
units recorded in the Parquet metadata, descriptor-named wide columns, and a clear refusal for
weights that ship no statistics."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from hsafeat.engine import Embedder
from hsafeat.io import open_input
from hsafeat.output import read_hsafeat_metadata
from hsafeat.pipeline import embed_file
from hsafeat.weights import DESC_TARGETS_FILE, WeightsError, load_desc_targets, load_weights, save_weights
from tests.conftest import TEST_VOCAB, tiny_model

NAMES = ["MolWt", "TPSA", "HeavyAtomCount"]
MEAN = [300.25, 60.5, 21.0]
STD = [45.125, 20.75, 3.5]
SMILES = ["CCO", "C1CC", "", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1"]  # rows 1 and 2 are invalid
DRUGS = Path(__file__).resolve().parent.parent / "data" / "drugs.smi"


def _readout_weights(out: Path, sidecar: bool) -> Path:
    torch.manual_seed(1)
    base = tiny_model()
    model = base.with_readout(torch.nn.Linear(2 * base.config.d_out, len(NAMES)), NAMES)
    save_weights(out, model, TEST_VOCAB, 500, {"note": "random test weights with a descriptor readout"})
    if sidecar:
        (out / DESC_TARGETS_FILE).write_text(json.dumps(
            {"names": NAMES, "mean": MEAN, "std": STD, "transform": "test", "provenance": "test"}))
    return out


@pytest.fixture(scope="module")
def with_stats(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _readout_weights(tmp_path_factory.mktemp("w") / "tiny-readout", sidecar=True)


@pytest.fixture(scope="module")
def without_stats(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _readout_weights(tmp_path_factory.mktemp("w") / "tiny-readout-nostats", sidecar=False)


def test_real_units_are_standard_times_std_plus_mean(with_stats: Path) -> None:
    standard = Embedder(str(with_stats)).embed(SMILES)
    real = Embedder(str(with_stats), desc_units="real").embed(SMILES)
    assert real.valid.tolist() == [True, False, False, True, True]
    expected = standard.embeddings["desc_pred"].astype(np.float64) * STD + MEAN
    np.testing.assert_allclose(real.embeddings["desc_pred"], expected, rtol=1e-6)
    assert real.embeddings["desc_pred"].dtype == np.float32
    assert np.isnan(real.embeddings["desc_pred"][~real.valid]).all()
    for name, values in standard.embeddings.items():  # only desc_pred changes
        if name != "desc_pred":
            assert values.tobytes() == real.embeddings[name].tobytes(), name


def test_refusals(with_stats: Path, without_stats: Path, tiny_weights: Path) -> None:
    with pytest.raises(WeightsError, match=f"ship no {DESC_TARGETS_FILE}.*standard units only"):
        Embedder(str(without_stats), desc_units="real")
    with pytest.raises(WeightsError, match="no descriptor readout"):
        Embedder(str(tiny_weights), desc_units="real")
    with pytest.raises(ValueError, match="unknown desc_units 'kelvin'"):
        Embedder(str(with_stats), desc_units="kelvin")
    assert Embedder(str(without_stats)).desc_units == "standard"  # the default needs no statistics


def test_sidecar_must_match_the_readout(with_stats: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(with_stats, tmp_path / "w")
    weights = load_weights(str(copy))
    assert load_desc_targets(weights).names == NAMES  # type: ignore[union-attr]
    sidecar = copy / DESC_TARGETS_FILE
    for change, message in ((dict(names=NAMES[::-1]), "names other descriptors"), (dict(std=[1.0, 0.0, 1.0]), "std positive"),
                            (dict(mean=MEAN[:2]), "one number per descriptor")):
        sidecar.write_text(json.dumps({"names": NAMES, "mean": MEAN, "std": STD, "transform": "", "provenance": "",
                                       **change}))
        with pytest.raises(WeightsError, match=message):
            load_desc_targets(weights)


def _smi(tmp_path: Path) -> Path:
    path = tmp_path / "in.smi"
    path.write_text("".join(f"{s}\n" if s else "\n" for s in SMILES))
    return path


@pytest.mark.parametrize("units", ["standard", "real"])
def test_embed_file_records_units_and_names_wide_columns(with_stats: Path, tmp_path: Path, units: str) -> None:
    embedder = Embedder(str(with_stats))
    out = tmp_path / "wide.parquet"
    embed_file(open_input(str(_smi(tmp_path))), out, embedder, levels=["desc_pred"], layout="wide", desc_units=units)
    meta = read_hsafeat_metadata(out)
    assert meta["desc_pred_units"] == units and meta["desc_pred_names"] == NAMES
    table = pq.read_table(out)
    assert table.column_names[6:] == [f"desc_pred_{n}" for n in NAMES]
    got = np.stack([table.column(f"desc_pred_{n}").to_numpy(zero_copy_only=False) for n in NAMES], axis=1)
    want = embedder.with_desc_units(units).embed(SMILES).embeddings["desc_pred"]
    np.testing.assert_array_equal(got, want)  # NaN where invalid: null in the file
    assert embedder.desc_units == "standard"  # the caller's embedder is left as it was


def test_encoding_workers_use_the_same_units(with_stats: Path, tmp_path: Path) -> None:
    smi = _smi(tmp_path)
    main, workers = tmp_path / "main.parquet", tmp_path / "workers.parquet"
    embedder = Embedder(str(with_stats))
    embed_file(open_input(str(smi)), main, embedder, desc_units="real")
    embed_file(open_input(str(smi)), workers, embedder, desc_units="real", workers=1, encode_in_workers=True)
    assert pq.read_table(main).equals(pq.read_table(workers))


def test_shipped_default_weights_give_real_units() -> None:
    """hsanet-moses-v2.2's statistics put its MolWt and HeavyAtomCount predictions on the RDKit
    values of the test drugs (slope near 1, small bias): wrong statistics would scale or shift them."""
    from rdkit import Chem
    from rdkit.Chem import Descriptors

    for name in ("hsanet-moses-v2.1", "hsanet-moses-v2.2"):  # every shipped readout has its statistics
        assert load_desc_targets(load_weights(name)) is not None, name
    embedder = Embedder("hsanet-moses-v2.2", desc_units="real")
    smiles = [line.split()[0] for line in DRUGS.read_text().splitlines() if line.strip()]
    pred = embedder.embed(smiles).embeddings["desc_pred"]
    names = list(embedder.weights.config.readout_descriptors)
    mols = [Chem.MolFromSmiles(s) for s in smiles]
    for name, max_bias in (("MolWt", 15.0), ("HeavyAtomCount", 1.0)):
        exact = np.asarray([getattr(Descriptors, name)(m) for m in mols])
        slope = np.polyfit(exact, pred[:, names.index(name)], 1)[0]
        assert 0.9 < slope < 1.1, (name, slope)
        assert abs(float(np.mean(pred[:, names.index(name)] - exact))) < max_bias, name


def test_featurizer_names_descriptors_and_gives_real_units(with_stats: Path, without_stats: Path) -> None:
    from hsafeat import HSAFeaturizer

    featurizer = HSAFeaturizer(columns=("fused", "desc_pred"), weights=str(with_stats), desc_units="real")
    names = featurizer.get_feature_names_out()
    assert names[0] == "fused_000" and names[-3:].tolist() == [f"desc_pred_{n}" for n in NAMES]
    X = featurizer.fit_transform(["CCO", "c1ccccc1O"])
    want = Embedder(str(with_stats), desc_units="real").embed(["CCO", "c1ccccc1O"]).embeddings["desc_pred"]
    assert X.shape == (2, len(names)) and X[:, -3:].tobytes() == want.tobytes()
    with pytest.raises(WeightsError, match="standard units only"):
        HSAFeaturizer(weights=str(without_stats), desc_units="real").fit(["CCO"])
