"""Source-Aware Fusion (SAF): a token-wise sparse mixture of experts over the level and motif
tokens. Each token gets a learned source embedding (which level / motif it came from); a router
picks the top-k of N MLP experts, whose outputs are weighted by the softmax of the selected
logits (the paper's Eq. 5 leaves the weights out, which would make the router untrainable).
Optional H-MoE routing: the router also sees a scaffold-level context vector."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hsafeat.data.buckets import run_topped_up, top_up


@dataclass
class FusionOutput:
    tokens: torch.Tensor         # B x T x d_out
    router_logits: torch.Tensor  # B x T x N  (float32)
    expert_index: torch.Tensor   # B x T x k
    expert_weight: torch.Tensor  # B x T x k


class SourceAwareFusion(nn.Module):
    def __init__(
        self, d_model: int, d_out: int, n_sources: int, n_queries: int, n_experts: int = 4, top_k: int = 2,
        scaffold_router: bool = False,
    ) -> None:
        super().__init__()
        self.top_k = top_k
        self.source_embedding = nn.Embedding(n_sources, d_model)
        self.register_buffer("source_ids", torch.arange(n_sources).repeat_interleave(n_queries), persistent=False)
        self.scaffold_context = nn.Linear(d_model, d_model) if scaffold_router else None
        self.router = nn.Linear(2 * d_model if scaffold_router else d_model, n_experts)
        d_hidden = 2 * d_model
        self.w1 = nn.Parameter(torch.randn(n_experts, d_model, d_hidden) / d_model**0.5)
        self.b1 = nn.Parameter(torch.zeros(n_experts, d_hidden))
        self.w2 = nn.Parameter(torch.randn(n_experts, d_hidden, d_out) / d_hidden**0.5)
        self.b2 = nn.Parameter(torch.zeros(n_experts, d_out))

    def forward(self, tokens: torch.Tensor, scaffold: torch.Tensor | None = None) -> FusionOutput:
        """tokens B x T x d (T = n_sources * K, in source order); scaffold B x d when the
        scaffold router is on."""
        t = tokens + self.source_embedding(self.source_ids)                          # B x T x d
        router_in = t
        if self.scaffold_context is not None:
            if scaffold is None:
                raise ValueError("this SAF has a scaffold router: pass the scaffold context")
            ctx = run_topped_up(self.scaffold_context, scaffold)[:, None, :].expand_as(t)
            router_in = torch.cat([t, ctx], dim=-1)
        logits = self.router(router_in).float()                                      # B x T x N
        top_logits, index = logits.topk(self.top_k, dim=-1)                          # B x T x k
        weight = torch.softmax(top_logits, dim=-1)
        # Each expert runs on the tokens that chose it (top_k / N of the dense work; measured:
        # the dense form was ~40 % of inference time), contributions summed in expert order.
        flat, flat_index, flat_weight = t.reshape(-1, t.shape[-1]), index.reshape(-1, self.top_k), weight.reshape(-1, self.top_k)
        fused = flat.new_zeros(flat.shape[0], self.w2.shape[-1])
        for e in range(self.w1.shape[0]):
            token, slot = (flat_index == e).nonzero(as_tuple=True)
            if not token.numel():
                continue
            hidden = F.gelu(torch.addmm(self.b1[e], flat.index_select(0, top_up(token)), self.w1[e]))
            out = torch.addmm(self.b2[e], hidden, self.w2[e])[:token.numel()]
            fused = fused.index_add(0, token, out * flat_weight[token, slot, None].to(out.dtype))
        fused = fused.view(*t.shape[:-1], -1)                                         # B x T x d_out
        return FusionOutput(tokens=fused, router_logits=logits, expert_index=index, expert_weight=weight)
