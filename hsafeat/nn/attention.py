"""Cross-attention projector (LLaMo-style): learned queries attend over a set of tokens.
Z = LN(q' + FFN(q')), q' = LN(q + MHA(q, X, X; key_padding_mask))."""
from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn


def padding_attn_mask(mask: torch.Tensor, n_heads: int, n_queries: int) -> torch.Tensor:
    """mask B x L (True = real token) -> (B n_heads) x n_queries x L bool attn_mask, True = masked:
    nn.MultiheadAttention's key_padding_mask given as attn_mask (see CrossAttentionBlock.forward)."""
    n_batch, n_tokens = mask.shape
    padding = (~mask).view(n_batch, 1, 1, n_tokens).expand(-1, n_heads, n_queries, -1)
    return padding.reshape(-1, n_queries, n_tokens)


def few_query_attention(attn: nn.MultiheadAttention, queries: torch.Tensor, tokens: torch.Tensor,
                        mask: torch.Tensor) -> torch.Tensor:
    """attn(queries, tokens, tokens) without dropout, for a few queries over many tokens, never
    projecting the tokens: per head, q.(W_k x + b_k) = (W_k^T q).x + q.b_k, whose second term is
    the same for every token and cancels in the softmax; and, as the weights a sum to 1,
    sum_j a_j (W_v x_j + b_v) = W_v (sum_j a_j x_j) + b_v. With 4 queries and 4 heads that is
    16 columns per token instead of the 256 of the key and value projections.
    queries B x K x d, tokens B x L x d, mask B x L (True = real token) -> B x K x d."""
    n_batch, n_queries, d = queries.shape
    heads = attn.num_heads
    head_dim = d // heads
    w_q, w_k, w_v = attn.in_proj_weight.chunk(3)
    b_q, _, b_v = attn.in_proj_bias.chunk(3)
    q = F.linear(queries, w_q, b_q).view(n_batch, n_queries, heads, head_dim) * head_dim ** -0.5
    u = torch.einsum("bkhe,hed->bhkd", q, w_k.view(heads, head_dim, d)).reshape(n_batch, heads * n_queries, d)
    scores = torch.bmm(u, tokens.transpose(1, 2)).masked_fill(~mask[:, None, :], float("-inf"))
    mixed = torch.bmm(scores.softmax(-1), tokens).view(n_batch, heads, n_queries, d)   # B x h x K x d
    values = torch.einsum("bhkd,hed->bkhe", mixed, w_v.view(heads, head_dim, d)).reshape(n_batch, n_queries, d)
    return F.linear(values + b_v, attn.out_proj.weight, attn.out_proj.bias)


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
        if self.training:
            padding = padding_attn_mask(mask, self.attn.num_heads, queries.size(1))
            attended, _ = self.attn(queries, tokens, tokens, attn_mask=padding, need_weights=False)
        else:  # the same attention, ~5x fewer multiplications (few_query_attention)
            attended = few_query_attention(self.attn, queries, tokens, mask)
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
