"""Pretraining targets: what the v2 recipe asks the encoder to predict."""
import numpy as np
from rdkit.Chem import Descriptors

from hsafeat.pretrain.corpus import FP_BITS, make_example, standardise_descriptors


def test_v2_targets_cover_three_radii_counts_and_every_descriptor():
    ex = make_example("CC(=O)Oc1ccccc1C(=O)O", targets="v2")
    assert ex.fp.shape == (3 * FP_BITS,) and set(np.unique(ex.fp)) <= {0, 1}
    # radius 1 bits are a subset of what radius 2 sees (Morgan environments grow with the radius)
    assert ex.fp[:FP_BITS].sum() < ex.fp[FP_BITS:2 * FP_BITS].sum() <= ex.fp[2 * FP_BITS:].sum()
    assert ex.counts.shape == (FP_BITS,) and ex.counts.max() >= 2   # aspirin repeats environments
    assert (ex.counts > 0).sum() == ex.fp[FP_BITS:2 * FP_BITS].sum()  # counts and bits agree at radius 2
    assert ex.desc.shape == (len(Descriptors.descList),)
    names = [n for n, _ in Descriptors.descList]
    assert abs(ex.desc[names.index("MolWt")] - 180.159) < 0.01


def test_v1_targets_unchanged():
    ex = make_example("CCO", targets="v1")
    assert ex.fp.shape == (FP_BITS,) and ex.counts.shape == (0,) and ex.desc.shape == (32,)


def test_standardise_clips_tails_drops_constants_and_fills_failures():
    rng = np.random.default_rng(0)
    raw = np.stack([rng.normal(5, 2, 1000), np.full(1000, 3.0), rng.normal(0, 1, 1000)], axis=1)
    raw[0, 0] = 1e12            # an Ipc-like outlier must not set the scale
    raw[1, 2] = np.nan          # a descriptor that failed on one molecule
    z, keep = standardise_descriptors(raw)
    assert keep.tolist() == [True, False, True] and z.shape == (1000, 2)
    assert abs(z[1:, 0].std() - 1) < 0.05 and np.abs(z).max() <= 5
    assert z[1, 1] == 0.0 and np.isfinite(z).all()
