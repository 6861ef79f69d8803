"""Shared fixtures: a tiny, randomly initialised encoder saved as a weights directory, so tests run
in seconds and never depend on the released weights (those get their own tests)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hsafeat.chem.features import ATOM_FEATURES, BOND_FEATURES
from hsafeat.nn.config import EncoderConfig
from hsafeat.nn.encoder import HSAEncoder

TEST_VOCAB = ["[UNK]", "c1ccccc1", "CC", "C", "O", "N", "CCO", "C=O"]


def tiny_config(**overrides: object) -> EncoderConfig:
    base = dict(atom_vocab=dict(ATOM_FEATURES), bond_vocab=dict(BOND_FEATURES), n_fragments=len(TEST_VOCAB),
                d_model=32, n_layers=5, n_queries=4, n_heads=4, d_state=4, expand=1, dt_rank=4, d_out=16,
                scaffold_router=True)
    base.update(overrides)
    return EncoderConfig(**base)  # type: ignore[arg-type]


def tiny_model(seed: int = 0, **overrides: object) -> HSAEncoder:
    torch.manual_seed(seed)
    model = HSAEncoder(tiny_config(**overrides))
    # Random gates would route everything one way; spread the per-level bias so both projectors
    # are exercised across levels.
    with torch.no_grad():
        model.hap.gate.level_bias.copy_(torch.tensor([[2.0, -2.0], [-2.0, 2.0]] * 3))
    return model.eval()


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights directory (random, untrained: for testing the machinery only)."""
    from hsafeat.weights import save_weights

    out = tmp_path_factory.mktemp("weights") / "tiny-test"
    save_weights(out, tiny_model(), TEST_VOCAB, 500, {"note": "random test weights, not pretrained"})
    return out
