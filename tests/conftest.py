"""Shared fixtures: a tiny, randomly initialised encoder saved as a weights directory, so tests run
in seconds and never depend on the released weights (those get their own tests)."""
from __future__ import annotations

from collections.abc import Iterator
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


@pytest.fixture
def encoder_threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """torch's thread count at each encoder call (Embedder.embed_featurized), appended as they happen."""
    from hsafeat.engine import Embedder

    seen: list[int] = []
    encode = Embedder.embed_featurized

    def recording(self: Embedder, feats):  # noqa: ANN001, ANN202
        seen.append(torch.get_num_threads())
        return encode(self, feats)

    monkeypatch.setattr(Embedder, "embed_featurized", recording)
    return seen


@pytest.fixture
def caller_threads() -> Iterator[int]:
    """The caller's own torch thread count for the test (neither 1 nor what share_cores would
    pick), torch's previous count restored afterwards."""
    from hsafeat import cores

    before = torch.get_num_threads()
    chosen = cores.available_cores() + 1
    torch.set_num_threads(chosen)
    yield chosen
    torch.set_num_threads(before)
