"""Structure-aware Graph-Mamba projector (E_Mamba of HAP).

Atoms arrive in the canonical serialisation order (fragment, degree, canonical rank); a degree
embedding is added, K learned readout tokens are appended right after each molecule's last atom,
one pre-norm Mamba block scans the sequence, and the K readout positions are the level's tokens.
The scan is causal, so the right padding after the readouts never changes them."""
from __future__ import annotations

import torch
from torch import nn

from hsafeat.nn.mamba import RMSNorm, StructuredMamba

MAX_DEGREE = 7


class GraphMambaProjector(nn.Module):
    def __init__(
        self, d_model: int, n_levels: int, n_queries: int, d_state: int, d_conv: int, expand: int, dt_rank: int,
    ) -> None:
        super().__init__()
        self.readout = nn.Parameter(torch.randn(n_levels, n_queries, d_model) * 0.02)
        self.degree_embedding = nn.Embedding(MAX_DEGREE + 2, d_model)
        nn.init.zeros_(self.degree_embedding.weight)
        self.norm = RMSNorm(d_model)
        self.structure_norm = RMSNorm(d_model)
        self.mamba = StructuredMamba(d_model, d_state, d_conv, expand, dt_rank)
        self.out_norm = nn.LayerNorm(d_model)

    def forward(
        self,
        tokens: torch.Tensor,     # B x L x d   atoms in serialisation order, right-padded
        structure: torch.Tensor,  # B x L x d   Â x in the same layout
        degree: torch.Tensor,     # B x L       degree category of each atom
        n_atoms: torch.Tensor,    # B
        level: torch.Tensor,      # B           which level each row is
    ) -> torch.Tensor:            # B x K x d
        n_rows, _, d = tokens.shape
        k = self.readout.shape[1]
        pad = tokens.new_zeros(n_rows, k, d)
        x = torch.cat([tokens + self.degree_embedding(degree), pad], dim=1)      # B x (L+K) x d
        s = torch.cat([structure, pad], dim=1)
        positions = n_atoms[:, None] + torch.arange(k, device=tokens.device)          # B x K
        readout_pos = positions.unsqueeze(-1).expand(-1, -1, d)
        x = x.scatter(1, readout_pos, self.readout[level])                       # readouts after the last atom
        h = x.gather(1, readout_pos) + self.mamba(self.norm(x), self.structure_norm(s), positions)
        return self.out_norm(h)                                                  # B x K x d
