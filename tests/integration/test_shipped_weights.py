"""The released weights: they load by default, their card is complete, and their embeddings
match the goldens made by scripts/make_golden.py."""
from pathlib import Path

import numpy as np
import pytest

from hsafeat.engine import Embedder
from hsafeat.weights import DEFAULT_WEIGHTS, load_weights

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "golden"
DRUGS = Path(__file__).resolve().parent.parent / "data" / "drugs.smi"


@pytest.fixture(scope="module")
def embedder():
    return Embedder()


def test_default_weights_load(embedder):
    assert embedder.weights.name == DEFAULT_WEIGHTS
    card = embedder.weights.card
    for key in ("corpus", "objectives", "steps", "seed", "final_losses", "wall_time_s", "command", "hsafeat_version"):
        assert key in card, key
    assert len(card["corpus"]["sha256"]) == 64
    assert card["sha256"] == embedder.weights.sha256


def bundled_releases() -> list[str]:
    from hsafeat.weights import bundled_dir

    return sorted(p.name for p in bundled_dir().iterdir() if (p / "model.safetensors").exists())


@pytest.mark.parametrize("name", bundled_releases())
def test_embeddings_match_goldens(name):
    """Every shipped release, default or not, reproduces its goldens."""
    embedder = Embedder(name)
    golden = np.load(GOLDEN / f"{name}.npz")
    assert str(golden["sha256"]) == embedder.weights.sha256, "goldens are stale: run scripts/make_golden.py"
    smiles = [line.split()[0] for line in DRUGS.read_text().splitlines() if line.strip()]
    result = embedder.embed(smiles)
    assert np.array_equal(result.valid, golden["valid"])
    for column, values in result.embeddings.items():
        np.testing.assert_allclose(values, golden[column], atol=1e-5, err_msg=column)


def test_every_bundled_release_verifies():
    from hsafeat.weights import bundled_dir

    releases = [p for p in bundled_dir().iterdir() if (p / "model.safetensors").exists()]
    assert releases
    for path in releases:
        assert load_weights(str(path)).sha256


def test_readout_release_adds_a_column_and_changes_no_other():
    """hsanet-moses-v2.1 is v2's encoder plus the descriptor head trained with it."""
    from rdkit import Chem
    from rdkit.Chem import Descriptors

    smiles = [line.split()[0] for line in DRUGS.read_text().splitlines() if line.strip()]
    base, extended = Embedder("hsanet-moses-v2").embed(smiles), Embedder("hsanet-moses-v2.1")
    result = extended.embed(smiles)
    assert set(result.embeddings) == set(base.embeddings) | {"desc_pred"}
    for column, values in base.embeddings.items():
        np.testing.assert_array_equal(values, result.embeddings[column], err_msg=column)
    # the columns are the named descriptors, in order: each tracks its real RDKit value
    names = list(extended.weights.config.readout_descriptors)
    mols = [Chem.MolFromSmiles(s) for s in smiles]
    functions = dict(Descriptors.descList)
    for name in ("MolLogP", "TPSA", "NumHDonors", "NumAromaticRings"):
        real = [functions[name](m) for m in mols]
        assert np.corrcoef(real, result.embeddings["desc_pred"][:, names.index(name)])[0, 1] > 0.7, name


def test_pooled_readout_release_changes_no_other_column_and_counts():
    """hsanet-moses-v2.2 is v2's encoder plus a pooled readout fitted on it (docs/DESIGN.md):
    other columns are v2's, bit for bit, and extensive descriptors, which the linear readout on
    fused could not count (MolWt r = 0.53), now track their real values."""
    from rdkit import Chem
    from rdkit.Chem import Descriptors

    smiles = [line.split()[0] for line in DRUGS.read_text().splitlines() if line.strip()]
    base, pooled = Embedder("hsanet-moses-v2").embed(smiles), Embedder("hsanet-moses-v2.2")
    result = pooled.embed(smiles)
    assert pooled.weights.config.readout_kind == "pooled_mlp"
    for column, values in base.embeddings.items():
        np.testing.assert_array_equal(values, result.embeddings[column], err_msg=column)
    names = list(pooled.weights.config.readout_descriptors)
    mols = [Chem.MolFromSmiles(s) for s in smiles]
    functions = dict(Descriptors.descList)
    for name, floor in (("MolWt", 0.95), ("HeavyAtomCount", 0.95), ("MolMR", 0.95), ("MolLogP", 0.9), ("TPSA", 0.9)):
        real = [functions[name](m) for m in mols]
        assert np.corrcoef(real, result.embeddings["desc_pred"][:, names.index(name)])[0, 1] > floor, name
