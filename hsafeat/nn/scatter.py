"""Scatter sums and means over graph indices, and padding to dense batches, in plain torch.

The same arithmetic as torch_geometric.utils.scatter and to_dense_batch (rows added into zeros
in index order; a mean divides by the count clamped at 1), so weights and embeddings are unchanged,
bit for bit (tests/unit/test_scatter.py compares with PyG). Importing torch_geometric pulls in
torch._dynamo and every dataset module: 2.5 s of each `hsafeat embed` start-up (docs/DESIGN.md,
"Encoder"), for four small functions."""
from __future__ import annotations

import torch


def _per_row(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """values (one per row of like) broadcast over like's other dimensions."""
    return values.view(-1, *([1] * (like.dim() - 1))).expand_as(like)


def scatter_sum(src: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
    """out[g] = sum of src's rows i with index[i] == g; dim_size rows. index_add_ adds whole rows
    in the order of i, as PyG's scatter_add_ adds each element: the same sums, bit for bit, and
    ~1.8x faster on the backbone's unsorted edge targets."""
    return src.new_zeros((dim_size, *src.shape[1:])).index_add_(0, index, src)


def scatter_mean(src: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
    """Row means per index; rows no entry maps to are zero."""
    count = src.new_zeros(dim_size).scatter_add_(0, index, src.new_ones(src.size(0))).clamp(min=1)
    total = scatter_sum(src, index, dim_size)
    return total / _per_row(count, total)


def to_dense_batch(x: torch.Tensor, batch: torch.Tensor, batch_size: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x (N x d, rows grouped by graph in order) -> (B x width x d zero-padded, B x width mask).
    width must be at least the largest group (the batch's frag_width is)."""
    counts = torch.bincount(batch, minlength=batch_size)
    starts = torch.cumsum(counts, 0) - counts
    slot = batch * width + torch.arange(batch.size(0), device=x.device) - starts.index_select(0, batch)
    out = x.new_zeros((batch_size * width, *x.shape[1:])).index_copy_(0, slot, x)
    mask = torch.zeros(batch_size * width, dtype=torch.bool, device=x.device).index_fill_(0, slot, True)
    return out.view(batch_size, width, *x.shape[1:]), mask.view(batch_size, width)
