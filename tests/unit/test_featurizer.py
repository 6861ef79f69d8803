import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hsafeat import HSAFeaturizer
from hsafeat.featurizer import InvalidSmilesError

SMILES = ["CCO", "c1ccccc1O", "CC(=O)O", "CCN", "c1ccncc1", "CCCCO", "OCC(O)CO", "CC(C)O"]


@pytest.fixture
def featurizer(tiny_weights):
    return HSAFeaturizer(columns=("fused", "level_5"), weights=str(tiny_weights))


def test_transform_shapes_and_names(featurizer):
    X = featurizer.fit_transform(SMILES)
    assert X.shape == (8, 48) and X.dtype == np.float32 and np.isfinite(X).all()
    names = featurizer.get_feature_names_out()
    assert len(names) == 48 and names[0] == "fused_000" and names[-1] == "level_5_015"


def test_invalid_policy(featurizer):
    with pytest.raises(InvalidSmilesError, match="rows 1"):
        featurizer.fit_transform(["CCO", "C1CC", "CCN"])
    featurizer.set_params(on_invalid="nan")
    X = featurizer.fit_transform(["CCO", "C1CC", "CCN"])
    assert np.isnan(X[1]).all() and np.isfinite(X[[0, 2]]).all()
    X2, mask = featurizer.transform_with_mask(["CCO", "", "CCN"])
    assert mask.tolist() == [True, False, True]
    np.testing.assert_array_equal(X[[0, 2]], X2[[0, 2]])


def test_sklearn_conventions(featurizer):
    params = featurizer.get_params()
    assert params["columns"] == ("fused", "level_5")
    twin = clone(featurizer)
    assert twin.get_params() == params and not hasattr(twin, "weights_sha256_")
    restored = pickle.loads(pickle.dumps(featurizer.fit(SMILES)))
    np.testing.assert_array_equal(restored.transform(SMILES), featurizer.transform(SMILES))


def test_in_a_pipeline(featurizer):
    y = np.array([0, 1, 0, 0, 1, 0, 0, 0])
    pipe = make_pipeline(featurizer, StandardScaler(), LogisticRegression(max_iter=200))
    pipe.fit(SMILES, y)
    assert pipe.predict_proba(SMILES).shape == (8, 2)
    clone(pipe).fit(SMILES, y)


def test_accepts_column_arrays(featurizer):
    X = featurizer.fit_transform(np.array(SMILES, dtype=object).reshape(-1, 1))
    assert X.shape[0] == 8


def test_device_defaults_to_auto_with_cpu_bytes_without_a_gpu(tiny_weights):
    import torch

    auto = HSAFeaturizer(weights=str(tiny_weights))
    assert auto.get_params()["device"] == "auto"
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: auto runs there, within the documented tolerance of the CPU")
    cpu = HSAFeaturizer(weights=str(tiny_weights), device="cpu")
    assert auto.fit_transform(SMILES).tobytes() == cpu.fit_transform(SMILES).tobytes()


def test_default_columns_are_the_recommended_one(tiny_weights):
    from hsafeat.weights import load_weights

    featurizer = HSAFeaturizer(weights=str(tiny_weights))
    X = featurizer.fit_transform(SMILES[:3])
    recommended = load_weights(str(tiny_weights)).recommended_column
    np.testing.assert_array_equal(X, HSAFeaturizer(columns=(recommended,), weights=str(tiny_weights)).fit_transform(SMILES[:3]))
    assert featurizer.get_feature_names_out()[0] == f"{recommended}_000"


def test_pooled_is_fused_then_level_sums(tiny_weights):
    from hsafeat.weights import load_weights

    config = load_weights(str(tiny_weights)).config
    pooled = HSAFeaturizer(columns=("pooled",), weights=str(tiny_weights)).fit_transform(SMILES)
    fused = HSAFeaturizer(columns=("fused",), weights=str(tiny_weights)).fit_transform(SMILES)
    assert pooled.shape == (len(SMILES), 2 * config.d_out + config.n_levels * config.d_model)
    np.testing.assert_array_equal(pooled[:, :2 * config.d_out], fused)


def test_one_column_by_name(tiny_weights):
    one = HSAFeaturizer(columns="fused", weights=str(tiny_weights))
    X = one.fit_transform(SMILES)
    np.testing.assert_array_equal(X, HSAFeaturizer(columns=("fused",), weights=str(tiny_weights)).fit_transform(SMILES))
    assert one.get_feature_names_out()[0] == "fused_000"


def test_unknown_column_set_after_fit_fails_as_at_fit(featurizer):
    featurizer.fit(SMILES)
    featurizer.set_params(columns=("bogus",))
    with pytest.raises(ValueError, match=r"unknown columns \['bogus'\]; available: \[.*'fused'") as at_transform:
        featurizer.transform(SMILES)
    with pytest.raises(ValueError) as at_fit:
        featurizer.fit(SMILES)
    assert str(at_transform.value) == str(at_fit.value)


def test_transform_encodes_on_one_thread_with_the_same_bytes(tiny_weights, encoder_threads, caller_threads):
    """Featurized in the caller's process, so encoded like `hsafeat embed --workers 0`: on one
    torch thread (two spin against each other beside a busy process), with the bytes of two
    threads, and the caller's thread count back afterwards."""
    import torch

    from hsafeat.engine import Embedder

    X = HSAFeaturizer(columns=("fused",), weights=str(tiny_weights), device="cpu").fit_transform(SMILES)
    assert encoder_threads and set(encoder_threads) == {1}
    assert torch.get_num_threads() == caller_threads
    torch.set_num_threads(2)
    assert X.tobytes() == Embedder(str(tiny_weights)).embed(SMILES).embeddings["fused"].tobytes()
