"""Molecule-size embedding (a deviation from the paper, off in v1/v2 configs; docs/DESIGN.md).

Every pooling step of HSA-Net is a weighted average: cross-attention and the SAF token means
have softmax or 1/T weights that sum to one, so `fused` cannot tell a molecule from a copy of it
twice as long. Extensive properties (weight, counts, solubility) then have to be guessed from
composition. This adds log-scaled atom, bond and fragment counts to every token before SAF. It is
linear in the log counts, so it extrapolates predictably beyond the narrow sizes of the
pretraining corpus (MOSES: ~18-27 heavy atoms), and it starts at zero, so a model initialised
from weights without it starts unchanged. Measured on the dev sets: it did not help (docs/DESIGN.md, "Tried and dropped")."""
from __future__ import annotations

import torch
from torch import nn

from hsafeat.data.batch import GraphBatch
from hsafeat.data.buckets import run_topped_up
from hsafeat.nn.scatter import scatter_sum

N_SIZE_FEATURES = 3


def size_features(batch: GraphBatch) -> torch.Tensor:
    """B x 3: log1p of heavy atoms, bonds and BRICS fragments per molecule."""
    n = batch.n_graphs
    atoms = batch.n_atoms.float()
    bonds = scatter_sum(torch.ones_like(batch.edge_index[0], dtype=torch.float32), batch.batch[batch.edge_index[0]], n) / 2
    frags = scatter_sum(torch.ones_like(batch.frag_batch, dtype=torch.float32), batch.frag_batch, n)
    return torch.log1p(torch.stack([atoms, bonds, frags], dim=-1))


class SizeEmbedding(nn.Module):
    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.out = nn.Linear(N_SIZE_FEATURES, d_model, bias=False)
        nn.init.zeros_(self.out.weight)

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        """B x d_model (rows topped up: one row per molecule, data/buckets.py)."""
        return run_topped_up(self.out, size_features(batch))
