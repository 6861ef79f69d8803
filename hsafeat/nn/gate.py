"""HAP gate G_h: per molecule and level, scores the two projectors from the level's pooled
atom statistics (the node std measures over-smoothing). logits = W LN([mean; std]) + b_level."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

N_PROJECTORS = 2  # 0 = cross-attention, 1 = Graph-Mamba
ATTENTION, MAMBA = 0, 1


class LevelGate(nn.Module):
    def __init__(self, d_model: int, n_levels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(2 * d_model)
        self.score = nn.Linear(2 * d_model, N_PROJECTORS)
        self.level_bias = nn.Parameter(torch.zeros(n_levels, N_PROJECTORS))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """pooled B x n_levels x 2d -> logits B x n_levels x 2 (float32)."""
        return (self.score(self.norm(pooled)) + self.level_bias).float()


def route(logits: torch.Tensor, training: bool, tau: float = 1.0, hard: bool = True) -> torch.Tensor:
    """Training: Gumbel-softmax (hard = one-hot forward, straight-through gradients).
    Inference: the argmax as a one-hot. Returns weights with the logits' shape."""
    if training:
        return F.gumbel_softmax(logits, tau=tau, hard=hard, dim=-1)
    return F.one_hot(logits.argmax(-1), N_PROJECTORS).to(logits.dtype)
