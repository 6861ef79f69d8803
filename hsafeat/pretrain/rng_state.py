"""Every random number generator a pretraining run draws from, as checkpoint values.

A resumed run must continue exactly where the interrupted one stopped, so a checkpoint holds the
state of: torch's global generator (Gumbel routing noise, weight initialisation), numpy's and
Python's global generators (nothing in hsafeat draws from them today; a library might), and the
run's own generators (the batch sampler's numpy Generator, the masking torch.Generator).
Values are tensors or JSON strings, so `torch.load(..., weights_only=True)` reads them."""
from __future__ import annotations

import json
import random

import numpy as np
import torch


def global_rng_state() -> dict[str, torch.Tensor | str]:
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": json.dumps([kind, np.asarray(keys).tolist(), pos, has_gauss, cached]),
        "python": json.dumps([version, list(internal), gauss_next]),
    }


def set_global_rng_state(state: dict[str, torch.Tensor | str]) -> None:
    torch.set_rng_state(state["torch"])  # type: ignore[arg-type]
    kind, keys, pos, has_gauss, cached = json.loads(state["numpy"])  # type: ignore[arg-type]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss_next = json.loads(state["python"])  # type: ignore[arg-type]
    random.setstate((version, tuple(internal), gauss_next))


def generator_state(rng: np.random.Generator) -> str:
    return json.dumps(rng.bit_generator.state)


def set_generator_state(rng: np.random.Generator, state: str) -> None:
    rng.bit_generator.state = json.loads(state)
