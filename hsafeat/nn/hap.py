"""Hierarchical Adaptive Projector (HAP): for every level and molecule, a gate picks the
cross-attention or the Graph-Mamba projector. Training runs both and mixes them with hard
Gumbel-softmax weights (straight-through); inference runs only the chosen one per row."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hsafeat.data.batch import GraphBatch
from hsafeat.data.buckets import run_topped_up, top_up
from hsafeat.nn.attention import CrossAttentionProjector
from hsafeat.nn.gate import ATTENTION, MAMBA, LevelGate, route
from hsafeat.nn.graph_mamba import GraphMambaProjector

DEGREE_FEATURE = 2  # column of the degree category in the atom features
GROUP_MIN_ROWS = 64  # training: rows per length group before a longer one may start (length_groups)
GROUP_SLACK = 1.25   # ... and the longest row a group may hold, relative to its shortest


@dataclass
class HAPOutput:
    tokens: torch.Tensor       # B x n_levels x K x d
    gate_logits: torch.Tensor  # B x n_levels x 2
    gate_weights: torch.Tensor  # B x n_levels x 2 (one-hot at inference)


def densify(h: torch.Tensor, batch: GraphBatch) -> torch.Tensor:
    """Node states (N x d, or n_levels x N x d) -> (n_levels x) B*L x d in serialisation order."""
    width = batch.n_graphs * batch.max_atoms
    out = h.new_zeros(*h.shape[:-2], width, h.shape[-1])
    return out.index_copy(-2, batch.slot, h)


def proximity_mix(dense: torch.Tensor, batch: GraphBatch) -> torch.Tensor:
    """Â x on the flat layout: (... x B*L x d) -> same shape, zero rows for isolated atoms.
    One sparse product over all levels at once: gathering per-pair messages instead would hold
    levels x pairs x d floats (measured: most of the encoder's peak memory at batch 256)."""
    n = dense.shape[-2]
    lead, d = dense.shape[:-2], dense.shape[-1]
    x = dense.movedim(-2, 0).reshape(n, -1)                                  # B*L x (levels * d)
    adj = torch.sparse_coo_tensor(batch.prox_index, batch.prox_weight.to(dense.dtype), (n, n), check_invariants=False)
    return torch.sparse.mm(adj, x).reshape(n, *lead, d).movedim(0, -2).contiguous()


def proximity_mix_rows(rows: torch.Tensor, molecules: torch.Tensor, batch: GraphBatch) -> torch.Tensor:
    """proximity_mix for chosen rows only: rows S x L x d, row s the dense tokens of molecule
    molecules[s] at some level -> S x L x d. Inference mixes only the rows routed to Graph-Mamba
    (~1 in 5 on drug-like molecules; mixing all of them was ~12 % of the encoder). Each row meets
    its molecule's proximity entries in the same order as in proximity_mix (they are stored
    molecule by molecule), so the sums are the same, bit for bit."""
    width, n_rows = batch.max_atoms, rows.shape[0]
    owner = torch.div(batch.prox_index[0], width, rounding_mode="floor")          # P: each entry's molecule
    counts = torch.bincount(owner, minlength=batch.n_graphs)
    per_row = counts[molecules]                                                    # S
    row_of_entry = torch.repeat_interleave(torch.arange(n_rows, device=rows.device), per_row)
    # entry e of row s is the molecule's (e - entries before row s)-th
    first = (torch.cumsum(counts, 0) - counts)[molecules] - torch.cumsum(per_row, 0) + per_row
    entry = torch.repeat_interleave(first, per_row) + torch.arange(row_of_entry.numel(), device=rows.device)
    index = batch.prox_index[:, entry] + ((row_of_entry - molecules[row_of_entry]) * width)[None, :]
    n = n_rows * width
    adj = torch.sparse_coo_tensor(index, batch.prox_weight[entry].to(rows.dtype), (n, n), check_invariants=False)
    return torch.sparse.mm(adj, rows.reshape(n, -1)).view_as(rows)


def masked_mean_std(dense: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """dense ... x B x L x d, zero where mask (B x L) is False, as densify leaves it -> ... x B x 2d:
    [mean; std] over real atoms. The mean needs no masking: the padding adds exact zeros."""
    m = mask.to(dense.dtype)[..., None]
    n = m.sum(-2).clamp(min=1.0)
    mean = dense.sum(-2) / n
    var = (((dense - mean.unsqueeze(-2)) ** 2) * m).sum(-2) / n
    return torch.cat([mean, torch.sqrt(var + 1e-6)], dim=-1)


def length_groups(n_atoms: torch.Tensor) -> list[tuple[torch.Tensor, int]]:
    """Rows (indices) in groups of similar length, each with its longest row's length. Training
    runs both projectors over every row; padded to the batch's largest molecule, a batch of
    broad-corpus molecules from 46 to 248 atoms costs 4x its atoms. Each row's result is the
    same at any padded width (masked attention; causal scan with the readouts right after the
    atoms), so each group is cut to its own."""
    order = torch.argsort(n_atoms, stable=True)
    sizes = n_atoms[order].tolist()
    groups, start = [], 0
    for i in range(1, len(sizes) + 1):
        if i == len(sizes) or (i - start >= GROUP_MIN_ROWS and sizes[i] > GROUP_SLACK * sizes[start]):
            groups.append((order[start:i], int(sizes[i - 1])))
            start = i
    return groups


class HierarchicalAdaptiveProjector(nn.Module):
    def __init__(
        self, d_model: int, n_levels: int, n_queries: int, n_heads: int, d_state: int, d_conv: int,
        expand: int, dt_rank: int, dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.gate = LevelGate(d_model, n_levels)
        self.attention = CrossAttentionProjector(d_model, n_heads, n_levels, n_queries, dropout)
        self.mamba = GraphMambaProjector(d_model, n_levels, n_queries, d_state, d_conv, expand, dt_rank)
        self.tau = 1.0          # Gumbel temperature, annealed by the trainer
        self.hard = True        # soft routing during the trainer's warm-up

    def forward(self, levels: list[torch.Tensor], batch: GraphBatch, force: int | None = None) -> HAPOutput:
        """levels: n_levels tensors N x d. force: route every row to one projector (ablations)."""
        n_levels, n_graphs, width = len(levels), batch.n_graphs, batch.max_atoms
        d = levels[0].shape[-1]
        flat = densify(torch.stack(levels), batch)                           # nl x B*L x d
        dense = flat.view(n_levels, n_graphs, width, d)
        mask = torch.arange(width, device=flat.device)[None, :] < batch.n_atoms[:, None]   # B x L
        logits = run_topped_up(self.gate, masked_mean_std(dense, mask).transpose(0, 1))  # B x nl x 2
        weights = route(logits, self.training, self.tau, self.hard)
        if force is not None:
            weights = torch.zeros_like(weights)
            weights[..., force] = 1.0

        # Rows are (level, molecule) pairs: row r = level * B + molecule.
        rows = dense.reshape(n_levels * n_graphs, width, d)
        row_mask = mask.repeat(n_levels, 1)
        row_level = torch.arange(n_levels, device=flat.device).repeat_interleave(n_graphs)
        row_atoms = batch.n_atoms.repeat(n_levels)
        degree = densify(batch.x[:, DEGREE_FEATURE, None], batch).view(n_graphs, width).repeat(n_levels, 1)
        row_weights = weights.transpose(0, 1).reshape(-1, 2)                 # nl*B x 2

        # training runs both projectors on every row, so Graph-Mamba's structure term is mixed for
        # all rows at once; inference mixes only the rows routed to Graph-Mamba (in `mamba`)
        both = self.training and force is None
        structure = proximity_mix(flat, batch).view(n_levels * n_graphs, width, d) if both else None

        # index_select, not rows[sel]: advanced indexing is ~3x slower on CPU (measured)
        def attention(sel: torch.Tensor, length: int = width) -> torch.Tensor:
            picked = [t.index_select(0, sel) for t in (rows, row_mask, row_level)]
            return self.attention(picked[0][:, :length], picked[1][:, :length], picked[2])

        def mamba(sel: torch.Tensor, length: int = width) -> torch.Tensor:
            picked = [t.index_select(0, sel) for t in (rows, degree, row_atoms, row_level)]
            near = (structure.index_select(0, sel) if structure is not None
                    else proximity_mix_rows(picked[0], sel % n_graphs, batch))
            return self.mamba(picked[0][:, :length], near[:, :length], picked[1][:, :length], *picked[2:])

        k = self.attention.queries.shape[1]
        if both:
            attended, scanned = rows.new_zeros(rows.shape[0], k, d), rows.new_zeros(rows.shape[0], k, d)
            for sel, length in length_groups(row_atoms):
                attended = attended.index_copy(0, sel, attention(sel, length))
                scanned = scanned.index_copy(0, sel, mamba(sel, length))
            out = row_weights[:, ATTENTION, None, None] * attended + row_weights[:, MAMBA, None, None] * scanned
        else:  # only the chosen projector runs for each row
            out = rows.new_zeros(rows.shape[0], k, d)
            chosen = row_weights.argmax(-1)
            for projector, run in ((ATTENTION, attention), (MAMBA, mamba)):
                sel = (chosen == projector).nonzero().squeeze(-1)
                if sel.numel():  # topped up: a handful of rows would take other kernels (buckets.py)
                    out = out.index_copy(0, sel, run(top_up(sel))[:sel.numel()])
        tokens = out.view(n_levels, n_graphs, k, d).transpose(0, 1)         # B x nl x K x d
        return HAPOutput(tokens=tokens, gate_logits=logits, gate_weights=weights)
