"""HSAEncoder: GINE backbone -> HAP per level + motif stream -> SAF -> multi-level embeddings,
and, in weights trained with descriptor targets, the linear readout of those descriptors."""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from hsafeat.data.batch import GraphBatch
from hsafeat.data.buckets import run_topped_up
from hsafeat.nn.config import EncoderConfig
from hsafeat.nn.gnn import GINEBackbone
from hsafeat.nn.hap import HierarchicalAdaptiveProjector
from hsafeat.nn.moe import SourceAwareFusion
from hsafeat.nn.motif import MotifStream
from hsafeat.nn.readout import READOUT_KINDS, PooledMLPReadout, level_sums, one_thread
from hsafeat.nn.scatter import scatter_sum
from hsafeat.nn.size import SizeEmbedding
from hsafeat.nn.smiles_branch import SmilesBranch


@dataclass
class EncoderOutput:
    tokens: torch.Tensor         # B x T x d_out   Y, the fused tokens (T = (n_levels + 1) * K)
    levels: torch.Tensor         # B x n_levels x d_out  mean of each level's tokens in Y
    motif: torch.Tensor          # B x d_out
    fused: torch.Tensor          # B x 2 d_out     [mean; max] of Y
    gate_logits: torch.Tensor    # B x n_levels x 2  (0 = cross-attention, 1 = Graph-Mamba)
    gate_weights: torch.Tensor   # B x n_levels x 2
    router_logits: torch.Tensor  # B x T x N
    expert_index: torch.Tensor   # B x T x k
    expert_weight: torch.Tensor  # B x T x k
    pooled: torch.Tensor | None = None     # B x (2 d_out + n_levels d_model)  [fused; scaled level sums]
    desc_pred: torch.Tensor | None = None  # B x n_desc  predicted standardised descriptors

    def embeddings(self) -> dict[str, torch.Tensor]:
        """The written-out columns: fused, level_0 ... level_{L-1}, motif, pooled (and desc_pred)."""
        out = {"fused": self.fused}
        out.update({f"level_{i}": self.levels[:, i] for i in range(self.levels.shape[1])})
        out["motif"] = self.motif
        if self.pooled is not None:
            out["pooled"] = self.pooled
        if self.desc_pred is not None:
            out["desc_pred"] = self.desc_pred
        return out


def scaffold_context(h: torch.Tensor, batch: GraphBatch) -> torch.Tensor:
    """Mean of node states over each molecule's Bemis-Murcko framework (all atoms if acyclic)."""
    has_scaffold = scatter_sum(batch.scaffold.float(), batch.batch, batch.n_graphs) > 0
    use = batch.scaffold | ~has_scaffold[batch.batch]
    w = use.to(h.dtype)[:, None]
    total = scatter_sum(h * w, batch.batch, batch.n_graphs)
    count = scatter_sum(w, batch.batch, batch.n_graphs).clamp(min=1.0)
    return total / count


class HSAEncoder(nn.Module):
    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.backbone = GINEBackbone(c.atom_vocab, c.bond_vocab, c.d_model, c.n_layers, c.dropout)
        self.hap = HierarchicalAdaptiveProjector(
            c.d_model, c.n_levels, c.n_queries, c.n_heads, c.d_state, c.d_conv, c.expand, c.dt_rank, c.dropout,
        )
        self.motif = MotifStream(c.n_fragments, c.d_model, c.n_queries, c.n_heads, c.dropout)
        self.size = SizeEmbedding(c.d_model) if c.size_embedding else None
        # The descriptor readout (nn/readout.py), shipped so users get the model's descriptor
        # predictions as a column: axis-aligned, named features that tree models use better than
        # the raw embedding (measured in BENCHMARKS.md).
        self.readout = self._make_readout(c)
        self.fusion = SourceAwareFusion(
            c.d_model, c.d_out, c.n_sources, c.n_queries, c.n_experts, c.top_k, c.scaffold_router,
        )
        # Built last, so the other parameters draw the same initial values with or without it.
        self.smiles = (SmilesBranch(c.smiles_vocab, c.d_model, c.smiles_layers, c.smiles_heads, c.smiles_max_len,
                                    c.dropout) if c.smiles_branch else None)

    @staticmethod
    def _make_readout(c: EncoderConfig) -> nn.Module | None:
        if not c.readout_descriptors:
            return None
        if c.readout_kind == "linear":
            return nn.Linear(2 * c.d_out, len(c.readout_descriptors))
        if c.readout_kind == "pooled_mlp":
            return PooledMLPReadout(2 * c.d_out + c.n_levels * c.d_model, c.readout_hidden, len(c.readout_descriptors))
        raise ValueError(f"unknown readout kind {c.readout_kind!r}; known: {', '.join(READOUT_KINDS)}")

    def readout_input(self, pooled: torch.Tensor) -> torch.Tensor:
        """What this encoder's readout reads: `pooled` for pooled_mlp, its `fused` part for linear."""
        return pooled if self.config.readout_kind == "pooled_mlp" else pooled[:, :2 * self.config.d_out]

    def load_extending(self, state: dict[str, torch.Tensor]) -> None:
        """Load weights of a model without the size embedding or the SMILES branch (which then
        start as the model loaded: zero size term, gate at 0); a descriptor readout is not carried
        over (training fits its own); any other mismatch is an error, as with a strict load."""
        state = {k: v for k, v in state.items() if not k.startswith("readout.")}
        missing, unexpected = self.load_state_dict(state, strict=False)
        absent = [k for k in missing if not k.startswith(("size.", "readout.", "smiles."))]
        if absent or unexpected:
            raise ValueError(f"weights do not match the encoder: missing {absent}, unexpected {unexpected}")

    def with_readout(self, head: nn.Module, names: list[str], kind: str = "linear", hidden: int = 0) -> HSAEncoder:
        """A copy of this encoder carrying `head` (readout_input -> the named descriptors) as its
        readout; head must be what _make_readout builds for that kind."""
        model = HSAEncoder(replace(self.config, readout_descriptors=tuple(names), readout_kind=kind, readout_hidden=hidden))
        model.load_extending(self.state_dict())
        model.readout.load_state_dict(head.state_dict())  # type: ignore[union-attr]
        return model.train(self.training)

    def forward(
        self, batch: GraphBatch, levels: list[torch.Tensor] | None = None, force_projector: int | None = None,
    ) -> EncoderOutput:
        """levels: precomputed backbone output (stage-B training runs the frozen GNN itself)."""
        if levels is None:
            levels = self.backbone(batch.x, batch.edge_index, batch.edge_attr)
        hap = self.hap(levels, batch, force=force_projector)
        n_graphs, n_levels, k, d = hap.tokens.shape
        motif = self.motif(levels[-1], batch)                                    # B x K x d
        tokens = torch.cat([hap.tokens.reshape(n_graphs, n_levels * k, d), motif], dim=1)
        if self.size is not None:
            tokens = tokens + self.size(batch)[:, None, :]
        if self.smiles is not None:
            if batch.smiles_tokens is None:
                raise ValueError("these weights read SMILES tokens: featurize with token_len=config.token_len")
            tokens = self.smiles(tokens, batch.smiles_tokens)                   # B x T x d
        ctx = scaffold_context(levels[-1], batch) if self.config.scaffold_router else None
        fusion = self.fusion(tokens, ctx)
        y = fusion.tokens                                                          # B x T x d_out
        per_source = y.view(n_graphs, n_levels + 1, k, -1).mean(2)                  # B x (nl+1) x d_out
        fused = torch.cat([y.mean(1), y.amax(1)], dim=-1)
        pooled = torch.cat([fused, level_sums(levels, batch.batch, batch.n_graphs)], dim=-1)
        return EncoderOutput(
            tokens=y,
            levels=per_source[:, :n_levels],
            motif=per_source[:, n_levels],
            fused=fused,
            gate_logits=hap.gate_logits,
            gate_weights=hap.gate_weights,
            router_logits=fusion.router_logits,
            expert_index=fusion.expert_index,
            expert_weight=fusion.expert_weight,
            pooled=pooled,
            desc_pred=self.descriptors(pooled),
        )

    def descriptors(self, pooled: torch.Tensor) -> torch.Tensor | None:
        if self.readout is None:
            return None
        if self.training:
            return self.readout(self.readout_input(pooled))
        with one_thread():  # the same bits whatever the thread count, as the embeddings
            return run_topped_up(self.readout, self.readout_input(pooled))
