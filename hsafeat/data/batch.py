"""Collate MolGraphs into one GraphBatch. Padding and serialisation order live here, once:
every node knows its slot in a dense B x L layout where atoms sit in their canonical
serialisation order. L (and the fragment width) is the largest molecule of the batch unless the
caller fixes it: inference fixes both per size bucket so that a molecule's padded shapes, and so
its arithmetic, never depend on its batch neighbours (see hsafeat.data.buckets)."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # nn imports this module and must not pull in RDKit
    from hsafeat.chem.graph import MolGraph


@dataclass
class GraphBatch:
    x: torch.Tensor            # N x n_atom_feats     int64
    edge_index: torch.Tensor   # 2 x E                int64, offset into the batch
    edge_attr: torch.Tensor    # E x n_bond_feats     int64
    batch: torch.Tensor        # N                    graph of each node
    n_atoms: torch.Tensor      # B
    slot: torch.Tensor         # N                    flat index b * L + position in serialisation order
    prox_index: torch.Tensor   # 2 x P                (row slot, column slot) in the flat B * L layout
    prox_weight: torch.Tensor  # P                    float32
    frag_index: torch.Tensor   # N                    fragment of each node, offset into the batch
    frag_ids: torch.Tensor     # F                    vocabulary id of each fragment
    frag_batch: torch.Tensor   # F                    graph of each fragment
    scaffold: torch.Tensor     # N bool               Bemis-Murcko framework atoms
    width: int = 0             # L: atom positions per molecule in the dense layout
    frag_width: int = 0        # fragment positions per molecule in the motif stream
    smiles_tokens: torch.Tensor | None = None  # B x S int64, 0 = pad; None unless the graphs carry tokens

    @property
    def n_graphs(self) -> int:
        return int(self.n_atoms.shape[0])

    @property
    def max_atoms(self) -> int:
        return self.width

    def to(self, device: torch.device | str) -> GraphBatch:
        return GraphBatch(**{
            f.name: value.to(device) if isinstance(value, torch.Tensor) else value
            for f in fields(self) for value in [getattr(self, f.name)]
        })


def collate(graphs: list[MolGraph], width: int | None = None, frag_width: int | None = None,
            token_width: int | None = None) -> GraphBatch:
    """token_width: S of smiles_tokens (default: the longest of the batch), for graphs that carry
    SMILES tokens (weights with the SMILES branch); graphs without tokens give smiles_tokens None."""
    n = np.asarray([g.n_atoms for g in graphs], dtype=np.int64)
    n_frags = np.asarray([len(g.frag_ids) for g in graphs], dtype=np.int64)
    node_offset = np.concatenate([[0], np.cumsum(n)[:-1]])
    frag_offset = np.concatenate([[0], np.cumsum(n_frags)[:-1]])
    width = width if width is not None else (int(n.max()) if len(graphs) else 0)
    frag_width = frag_width if frag_width is not None else (int(n_frags.max()) if len(graphs) else 0)
    if len(graphs) and (n.max() > width or n_frags.max() > frag_width):
        raise ValueError(f"a molecule does not fit the batch widths ({width} atoms, {frag_width} fragments)")

    slots, prox_rows, prox_cols = [], [], []
    for b, g in enumerate(graphs):
        position = np.empty(g.n_atoms, dtype=np.int64)
        position[g.order] = np.arange(g.n_atoms)
        slot = b * width + position
        slots.append(slot)
        prox_rows.append(slot[g.prox_index[0]])
        prox_cols.append(slot[g.prox_index[1]])

    def cat(arrays: list[np.ndarray], dtype: type = np.int64, shape: tuple = (0,)) -> torch.Tensor:
        return torch.from_numpy(np.concatenate(arrays).astype(dtype) if arrays else np.zeros(shape, dtype))

    return GraphBatch(
        x=cat([g.x for g in graphs], shape=(0, 9)),
        edge_index=torch.from_numpy(
            np.concatenate([g.edge_index + o for g, o in zip(graphs, node_offset)], axis=1)
            if graphs else np.zeros((2, 0), np.int64)
        ),
        edge_attr=cat([g.edge_attr for g in graphs], shape=(0, 4)),
        batch=torch.from_numpy(np.repeat(np.arange(len(graphs)), n)),
        n_atoms=torch.from_numpy(n),
        slot=cat(slots),
        prox_index=torch.stack([cat(prox_rows), cat(prox_cols)]),
        prox_weight=cat([g.prox_weight for g in graphs], np.float32),
        frag_index=cat([g.frag_index + o for g, o in zip(graphs, frag_offset)]),
        frag_ids=cat([g.frag_ids for g in graphs]),
        frag_batch=torch.from_numpy(np.repeat(np.arange(len(graphs)), n_frags)),
        scaffold=cat([g.scaffold for g in graphs], np.bool_),
        width=width,
        frag_width=frag_width,
        smiles_tokens=pad_tokens([g.smiles_tokens for g in graphs], token_width),
    )


def pad_tokens(tokens: list[np.ndarray], width: int | None = None) -> torch.Tensor | None:
    """B x S int64, each row's ids then 0 (PAD); None when no row carries any (no branch)."""
    lengths = [len(t) for t in tokens]
    if not any(lengths):
        return None
    if not all(lengths):
        raise ValueError("some molecules of the batch carry SMILES tokens and others do not")
    width = width if width is not None else max(lengths)
    if max(lengths) > width:
        raise ValueError(f"a molecule does not fit the batch's token width ({width})")
    out = np.zeros((len(tokens), width), dtype=np.int64)
    for b, t in enumerate(tokens):
        out[b, :len(t)] = t
    return torch.from_numpy(out)
