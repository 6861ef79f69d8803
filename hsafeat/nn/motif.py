"""Motif stream: BRICS fragments as tokens, Emb(fragment id) + mean of the last level's atom
states over the fragment; K motif queries cross-attend to them -> Z(motif)."""
from __future__ import annotations

import torch
from torch import nn

from hsafeat.data.batch import GraphBatch
from hsafeat.data.buckets import run_topped_up
from hsafeat.nn.attention import CrossAttentionBlock
from hsafeat.nn.scatter import scatter_mean, to_dense_batch


class MotifStream(nn.Module):
    def __init__(self, n_fragments: int, d_model: int, n_queries: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fragment_embedding = nn.Embedding(n_fragments, d_model)
        self.queries = nn.Parameter(torch.randn(n_queries, d_model) * 0.02)
        self.block = CrossAttentionBlock(d_model, n_heads, dropout)

    def forward(self, h: torch.Tensor, batch: GraphBatch) -> torch.Tensor:
        """h: last-level node states N x d -> B x K x d."""
        n_frags = batch.frag_ids.shape[0]
        pooled = scatter_mean(h, batch.frag_index, n_frags)                                  # F x d
        frags = self.fragment_embedding(batch.frag_ids) + pooled
        dense, mask = to_dense_batch(frags, batch.frag_batch, batch.n_graphs, batch.frag_width)  # B x F x d
        return run_topped_up(lambda x, m: self.block(self.queries.expand(x.shape[0], -1, -1), x, m), dense, mask)
