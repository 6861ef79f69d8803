"""DMCA's sequence branch (arXiv 2501.06608), optional and off by default (config.smiles_branch).

A small transformer encodes the canonical SMILES' tokens (chem/smiles_tokens.py); the graph tokens
(HAP's level tokens and the motif tokens, before SAF) then read it by cross-attention, added
residually through a gate g that starts at 0:

    H = Encoder(E_tok[s] + E_pos)                                  B x S x d
    C = MHA(LN(Z), H, H; key padding);  C = C + FFN(LN(C))         B x T x d
    Z' = Z + g C,   g a learned scalar, g = 0 at initialisation

With g = 0, Z' = Z exactly: a model with the branch starts as the model without it (its other
parameters equal), and the branch grows only as far as training finds it useful. g multiplies C,
so dL/dg = <C, dL/dZ'> is non-zero from the first step, while the branch's own weights get
gradients once g has moved (as ReZero, arXiv 2003.04887).
"""
from __future__ import annotations

import torch
from torch import nn

from hsafeat.data.buckets import run_topped_up
from hsafeat.nn.attention import padding_attn_mask

PAD = 0   # chem/smiles_tokens.PAD (nn does not import chem)


class SelfAttentionLayer(nn.Module):
    """Pre-LN transformer layer: h' = h + MHA(LN h; key padding), h'' = h' + FFN(LN h')."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(2 * d_model, d_model))

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """h B x S x d, mask B x S (True = real token) -> B x S x d. Padding is given as attn_mask
        (attention.py: key_padding_mask would import sympy at start-up); padded positions still
        attend to the real tokens, so nothing is NaN, and nothing reads them."""
        x = self.norm1(h)
        attended, _ = self.attn(x, x, x, attn_mask=padding_attn_mask(mask, self.attn.num_heads, h.size(1)),
                                need_weights=False)
        h = h + attended
        return h + self.ffn(self.norm2(h))


class SmilesEncoder(nn.Module):
    """H = LN(layers(E_tok[s] + E_pos[0..S-1])): token ids B x S (0 = pad) -> B x S x d, mask B x S."""

    def __init__(self, n_tokens: int, d_model: int, n_layers: int, n_heads: int, max_len: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(n_tokens, d_model, padding_idx=PAD)
        self.position_embedding = nn.Embedding(max_len, d_model)   # learned: positions 0..max_len-1
        self.layers = nn.ModuleList(SelfAttentionLayer(d_model, n_heads, dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = tokens != PAD                                                      # B x S
        positions = torch.arange(tokens.size(1), device=tokens.device)
        h = self.token_embedding(tokens) + self.position_embedding(positions)   # B x S x d
        for layer in self.layers:
            h = layer(h, mask)
        return self.norm(h), mask


class SmilesBranch(nn.Module):
    """Z' = Z + g C, C = cross-attention of the graph tokens Z over the SMILES encoding (module doc)."""

    def __init__(self, n_tokens: int, d_model: int, n_layers: int, n_heads: int, max_len: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.encoder = SmilesEncoder(n_tokens, d_model, n_layers, n_heads, max_len, dropout)
        self.norm_q = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.norm_ffn = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.GELU(), nn.Linear(2 * d_model, d_model))
        self.gate = nn.Parameter(torch.zeros(()))   # g = 0: the branch starts switched off

    def forward(self, z: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """z: graph tokens B x T x d; tokens: SMILES ids B x S (0 = pad, CLS first) -> B x T x d.
        Run on at least MIN_ROWS molecules (data/buckets.py): the attention kernels gave other bits
        for a batch of 2 molecules than for 1, 4 or 10 (measured), as HAP's and the motif's do."""
        return run_topped_up(self._forward, z, tokens)

    def _forward(self, z: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        h, mask = self.encoder(tokens)                                            # B x S x d
        q = self.norm_q(z)
        c, _ = self.attn(q, h, h, attn_mask=padding_attn_mask(mask, self.attn.num_heads, z.size(1)),
                         need_weights=False)                                      # B x T x d
        c = c + self.ffn(self.norm_ffn(c))
        return z + self.gate * c
