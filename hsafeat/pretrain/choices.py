"""The choice options of `hsafeat pretrain` (no heavy imports: the CLI module imports these)."""
from __future__ import annotations

from enum import StrEnum


class TargetSet(StrEnum):
    v1 = "v1"  # ECFP4 bits, 32 descriptors
    v2 = "v2"  # Morgan r1-3 bits, r2 counts, every RDKit descriptor
    v3 = "v3"  # v2 + ~1,300 Mordred 2D descriptors (needs the mordred extra)


class ReadoutKind(StrEnum):
    pooled_mlp = "pooled_mlp"  # fused + summed node states, linear + MLP (nn/readout.py)
    linear = "linear"          # linear on fused
    none = "none"              # no desc_pred column


class AtomMasking(StrEnum):
    element = "element"        # stage A masks the atomic number only
    attributes = "attributes"  # also charge, H count, hybridization, chirality, degree, radicals (objectives.py)


class HeadsOn(StrEnum):
    fused = "fused"    # stage C's linear heads read [mean; max] of the fused tokens
    pooled = "pooled"  # ... fused and every GNN level's summed node states (the `pooled` column)


class Batching(StrEnum):
    random = "random"  # molecules drawn at random for each batch
    size = "size"      # pools of 32 random batches sorted by atom count (loop.Trainer._size_batch)
