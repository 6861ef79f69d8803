"""Cross-attention projector (LLaMo-style): learned queries attend over a set of tokens.
Z = LN(q' + FFN(q')), q' = LN(q + MHA(q, X, X; key_padding_mask))."""
from __future__ import annotations

import torch
from torch import nn


def padding_attn_mask(mask: torch.Tensor, n_heads: int, n_queries: int) -> torch.Tensor:
    """mask B x L (True = real token) -> (B n_heads) x n_queries x L bool attn_mask, True = masked:
    nn.MultiheadAttention's key_padding_mask given as attn_mask (see CrossAttentionBlock.forward)."""
    n_batch, n_tokens = mask.shape
    padding = (~mask).view(n_batch, 1, 1, n_tokens).expand(-1, n_heads, n_queries, -1)
    return padding.reshape(-1, n_queries, n_tokens)


class CrossAttentionBlock(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.GELU(), nn.Linear(2 * d_model, d_model))
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, queries: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """queries B x K x d, tokens B x L x d, mask B x L (True = real token) -> B x K x d.
        Every row must have at least one real token."""
        # The padding goes in as attn_mask, not key_padding_mask: torch checks the latter with
        # torch._check_with, whose first call imports sympy (0.6 s of every start-up). Same
        # -inf entries, same attention (bit for bit, tests/unit/test_encoder.py).
        padding = padding_attn_mask(mask, self.attn.num_heads, queries.size(1))
        attended, _ = self.attn(queries, tokens, tokens, attn_mask=padding, need_weights=False)
        q = self.norm1(queries + attended)
        return self.norm2(q + self.ffn(q))


class CrossAttentionProjector(nn.Module):
    """E_Attn of HAP: per-level learned queries, attention weights shared across levels."""

    def __init__(self, d_model: int, n_heads: int, n_levels: int, n_queries: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(n_levels, n_queries, d_model) * 0.02)
        self.block = CrossAttentionBlock(d_model, n_heads, dropout)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """tokens B x L x d, mask B x L, level B (which level each row is) -> B x K x d."""
        return self.block(self.queries[level], tokens, mask)
