"""Embedder: SMILES -> validated graphs -> batched encoder passes -> numpy arrays, row-aligned.

Every input SMILES gets a result: valid rows carry embeddings, invalid rows carry the reason.
Within a call molecules run in size-bucket batches (hsafeat.data.buckets) and the original order
is restored; a molecule's output is byte-identical whatever its neighbours and the batch size."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from hsafeat.chem.featurize import Featurized, featurize
from hsafeat.data.batch import collate
from hsafeat.data.buckets import plan_batches
from hsafeat.memory import HeapTrimmer
from hsafeat.weights import DESC_TARGETS_FILE, LoadedWeights, WeightsError, load_desc_targets, load_weights

DESC_UNITS = ("standard", "real")


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch sees no CUDA device")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"unknown device '{device}' (use auto, cpu or cuda)")
    return torch.device(device)


def desc_affine(weights: LoadedWeights, desc_units: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(std, mean) that take desc_pred from the readout's standard units to `desc_units`; None
    for "standard" (the readout's own output, unchanged)."""
    if desc_units not in DESC_UNITS:
        raise ValueError(f"unknown desc_units '{desc_units}' (use {' or '.join(DESC_UNITS)})")
    if desc_units == "standard":
        return None
    if not weights.config.readout_descriptors:
        raise WeightsError(f"weights {weights.name} have no descriptor readout (no desc_pred column), "
                           "so desc_units='real' does not apply")
    targets = load_desc_targets(weights)
    if targets is None:
        raise WeightsError(f"weights {weights.name} ship no {DESC_TARGETS_FILE} (the means and standard deviations "
                           "of their descriptor targets): desc_pred is available in standard units only")
    return targets.std, targets.mean


@dataclass
class Embedded:
    canonical: list[str | None]
    errors: list[str | None]
    valid: np.ndarray                    # n bool
    embeddings: dict[str, np.ndarray]    # name -> n x D float32 (NaN on invalid rows)
    gate_probs: np.ndarray               # n x n_levels x 2 (attention, mamba); NaN on invalid rows
    expert_weights: np.ndarray           # n x n_sources x n_experts: mean sparse SAF weight per source


class Embedder:
    """desc_units: "standard" gives desc_pred as the readout predicts it (standard units of the
    pretraining corpus); "real" gives value * std + mean, RDKit's own units (weights that ship
    desc_targets.json only)."""

    def __init__(self, weights: str | LoadedWeights | None = None, device: str = "cpu", batch_size: int = 128,
                 desc_units: str = "standard") -> None:
        self.device = resolve_device(device)
        self.weights = weights if isinstance(weights, LoadedWeights) else load_weights(weights, self.device)
        self.weights.model.to(self.device)
        self.vocab = self.weights.vocab_index
        self.batch_size = batch_size
        self.trimmer = HeapTrimmer()
        self.dims = self.weights.config.column_dims()
        self.desc_units = desc_units
        self._desc_affine = desc_affine(self.weights, desc_units)

    def with_desc_units(self, desc_units: str) -> Embedder:
        """This embedder (the same loaded encoder) giving desc_pred in `desc_units`."""
        if desc_units == self.desc_units:
            return self
        twin = copy.copy(self)
        twin.desc_units, twin._desc_affine = desc_units, desc_affine(self.weights, desc_units)
        return twin

    @property
    def model(self) -> torch.nn.Module:
        return self.weights.model

    def embed(self, smiles: list[str]) -> Embedded:
        feats = featurize(smiles, self.vocab, self.weights.max_atoms, self.weights.config.token_len)
        return self.embed_featurized(feats)

    @torch.inference_mode()
    def embed_featurized(self, feats: Featurized) -> Embedded:
        n = len(feats.graphs)
        c = self.weights.config
        valid = np.asarray([g is not None for g in feats.graphs], dtype=bool)
        out = {name: np.full((n, d), np.nan, dtype=np.float32) for name, d in self.dims.items()}
        gates = np.full((n, c.n_levels, 2), np.nan, dtype=np.float32)
        experts = np.full((n, c.n_sources, c.n_experts), np.nan, dtype=np.float32)
        todo = np.flatnonzero(valid)
        graphs = [feats.graphs[i] for i in todo]
        sizes = [(g.n_atoms, len(g.frag_ids)) for g in graphs]  # type: ignore[union-attr]
        n_tokens = [len(g.smiles_tokens) for g in graphs] if c.smiles_branch else None  # type: ignore[union-attr]
        for plan in plan_batches([a for a, _ in sizes], [f for _, f in sizes], self.batch_size, n_tokens):  # type: ignore[arg-type]
            idx = todo[plan.members[:plan.n_real]]
            members = [graphs[i] for i in plan.members]
            batch = collate(members, plan.width, plan.frag_width, plan.token_width).to(self.device)  # type: ignore[arg-type]
            result = self.model(batch)
            keep = slice(0, plan.n_real)
            for name, value in result.embeddings().items():
                out[name][idx] = value[keep].float().cpu().numpy()
            gates[idx] = torch.softmax(result.gate_logits[keep], -1).cpu().numpy()
            sparse = torch.zeros_like(result.router_logits).scatter(-1, result.expert_index, result.expert_weight)
            experts[idx] = sparse[keep].view(plan.n_real, c.n_sources, c.n_queries, -1).mean(2).cpu().numpy()
            del batch, result, sparse
            self.trimmer.after_batch()
        if self._desc_affine is not None:  # in float64, then float32 like every column; NaN rows stay NaN
            std, mean = self._desc_affine
            out["desc_pred"] = (out["desc_pred"] * std + mean).astype(np.float32)
        return Embedded(feats.canonical, feats.errors, valid, out, gates, experts)
