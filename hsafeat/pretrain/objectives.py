"""Self-supervised objectives and view augmentation for the two pretraining stages."""
from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from hsafeat.chem.features import ATOM_FEATURES, ATOM_MASK, BOND_FEATURES, BOND_MASK, N_ELEMENTS
from hsafeat.chem.smiles_tokens import CLS, MASK, PAD
from hsafeat.data.batch import GraphBatch

ATOM_CLASSES = N_ELEMENTS + 1   # atomic numbers + "other"
BOND_CLASSES = BOND_FEATURES["bond_type"] - 1  # bond types + "other" (not [MASK])
ATOM_COLUMNS = list(ATOM_FEATURES)
# Masked together with the element ("attributes" masking): each would give the element away
# (hybridization, H count and charge all but name it) and each is a target of its own. A masked
# attribute takes its "other" slot, the last; aromatic and in_ring have no such slot and stay.
MASKED_ATTRIBUTES = ("chirality", "degree", "formal_charge", "num_hs", "hybridization", "radical_electrons")
PREDICTED_ATTRIBUTES = ("formal_charge", "num_hs", "hybridization", "chirality")
ATOM_MASKING = ("element", "attributes")


def mask_atoms(batch: GraphBatch, rate: float, generator: torch.Generator | None = None,
               masking: str = "element") -> tuple[GraphBatch, torch.Tensor]:
    """Replace the atomic number of a random `rate` of atoms with [MASK] (masking="attributes":
    also every attribute of MASKED_ATTRIBUTES with its "other" slot); returns the view and the
    masked positions (at least one per batch)."""
    chosen = torch.rand(batch.x.shape[0], generator=generator) < rate
    if not chosen.any():
        chosen[0] = True
    x = batch.x.clone()
    x[chosen, 0] = ATOM_MASK
    if masking == "attributes":
        for name in MASKED_ATTRIBUTES:
            x[chosen, ATOM_COLUMNS.index(name)] = ATOM_FEATURES[name] - 1
    elif masking != "element":
        raise ValueError(f"unknown atom masking {masking!r}; known: {', '.join(ATOM_MASKING)}")
    return replace(batch, x=x), chosen


def mask_tokens(batch: GraphBatch, rate: float, generator: torch.Generator | None = None) -> GraphBatch:
    """The view with a random `rate` of its SMILES tokens (not CLS, not padding) set to <mask>: with
    the SMILES branch, a view whose tokens were whole would show the other view the molecule its
    masked atoms hide. Batches without tokens come back as they are, drawing nothing."""
    tokens = batch.smiles_tokens
    if tokens is None:
        return batch
    chosen = (torch.rand(tokens.shape, generator=generator) < rate) & (tokens != PAD) & (tokens != CLS)
    return replace(batch, smiles_tokens=tokens.masked_fill(chosen, MASK))


def mask_bonds(batch: GraphBatch, rate: float, generator: torch.Generator | None = None) -> tuple[GraphBatch, torch.Tensor]:
    """Mask the type of a random `rate` of bonds (both directions: edges come in pairs)."""
    n_bonds = batch.edge_attr.shape[0] // 2
    chosen = (torch.rand(n_bonds, generator=generator) < rate).repeat_interleave(2)
    attr = batch.edge_attr.clone()
    attr[chosen, 0] = BOND_MASK
    return replace(batch, edge_attr=attr), chosen


class StageAHeads(nn.Module):
    """Predict masked atomic numbers from H(L) and masked bond types from both end atoms; with
    attributes=True also the masked atoms' PREDICTED_ATTRIBUTES."""

    def __init__(self, d_model: int, attributes: bool = False) -> None:
        super().__init__()
        self.atom = nn.Linear(d_model, ATOM_CLASSES)
        self.bond = nn.Sequential(nn.Linear(2 * d_model, d_model), nn.ReLU(), nn.Linear(d_model, BOND_CLASSES))
        self.attributes = nn.ModuleDict({name: nn.Linear(d_model, ATOM_FEATURES[name]) for name in PREDICTED_ATTRIBUTES}
                                        ) if attributes else None

    def attribute_loss(self, h: torch.Tensor, x: torch.Tensor, atom_sel: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over PREDICTED_ATTRIBUTES of the masked atoms (x: the unmasked features)."""
        assert self.attributes is not None
        losses = [F.cross_entropy(head(h[atom_sel]), x[atom_sel, ATOM_COLUMNS.index(name)])
                  for name, head in self.attributes.items()]
        return torch.stack(losses).mean()

    def loss(self, h: torch.Tensor, batch: GraphBatch, atom_target: torch.Tensor, atom_sel: torch.Tensor,
             bond_target: torch.Tensor, bond_sel: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"atom": F.cross_entropy(self.atom(h[atom_sel]), atom_target[atom_sel].clamp(max=ATOM_CLASSES - 1))}
        if bond_sel.any():
            src, dst = batch.edge_index[:, bond_sel]
            logits = self.bond(torch.cat([h[src], h[dst]], dim=-1))
            out["bond"] = F.cross_entropy(logits, bond_target[bond_sel].clamp(max=BOND_CLASSES - 1))
        return out


class StageBHeads(nn.Module):
    """Predict ECFP bits and standardised descriptors from the mean of the fused tokens Y."""

    def __init__(self, d_out: int, n_bits: int, n_desc: int) -> None:
        super().__init__()
        self.fp = nn.Linear(d_out, n_bits)
        self.desc = nn.Sequential(nn.Linear(d_out, d_out), nn.GELU(), nn.Linear(d_out, n_desc))
        self.projection = nn.Sequential(nn.Linear(d_out, d_out), nn.GELU(), nn.Linear(d_out, d_out))

    def loss(self, pooled: torch.Tensor, fp: torch.Tensor, desc: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            "fp": F.binary_cross_entropy_with_logits(self.fp(pooled), fp),
            "desc": F.mse_loss(self.desc(pooled), desc),
        }


class StageCHeads(nn.Module):
    """Linear read-outs from the fused embedding ([mean; max] of Y, the column users get): Morgan
    bits (BCE), radius-2 log counts and standardised descriptors (MSE). Linear, so that what they
    need is linearly present in the embedding, which is what ridge and logistic heads can use."""

    def __init__(self, d_in: int, n_bits: int, n_counts: int, n_desc: int) -> None:
        super().__init__()
        self.fp = nn.Linear(d_in, n_bits)
        self.counts = nn.Linear(d_in, n_counts) if n_counts else None
        self.desc = nn.Linear(d_in, n_desc)
        self.projection = nn.Sequential(nn.Linear(d_in, d_in), nn.GELU(), nn.Linear(d_in, d_in))

    def loss(self, emb: torch.Tensor, fp: torch.Tensor, counts: torch.Tensor, desc: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"fp": F.binary_cross_entropy_with_logits(self.fp(emb), fp), "desc": F.mse_loss(self.desc(emb), desc)}
        if self.counts is not None:
            out["counts"] = F.mse_loss(self.counts(emb), counts)
        return out
