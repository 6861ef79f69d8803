"""Auxiliary losses as pure functions (outside the modules that produce their inputs)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def load_balancing_loss(router_logits: torch.Tensor, expert_index: torch.Tensor, n_experts: int) -> torch.Tensor:
    """Switch-style N * sum_i f_i P_i: f_i the share of top-k slots given to expert i, P_i its mean
    router probability. 1.0 when balanced."""
    probs = torch.softmax(router_logits.float(), dim=-1).reshape(-1, n_experts)
    counts = F.one_hot(expert_index.reshape(-1), n_experts).float().mean(0)
    return n_experts * (counts * probs.mean(0)).sum()


def gate_balance_loss(gate_logits: torch.Tensor, gate_weights: torch.Tensor) -> torch.Tensor:
    """Per-level Switch-style balance for the HAP gate (B x n_levels x 2): mean over levels of
    2 * sum_i f_i P_i. Hard top-1 gates otherwise collapse onto one projector within tens of
    steps (measured: 99 % Graph-Mamba at every level after 40 stage-B steps)."""
    probs = torch.softmax(gate_logits.float(), dim=-1).mean(0)    # n_levels x 2
    share = gate_weights.detach().float().mean(0)                   # n_levels x 2
    return (2 * (share * probs).sum(-1)).mean()


def nt_xent(a: torch.Tensor, b: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """Symmetric InfoNCE between two views: row i of a and b are positives, other rows negatives."""
    a, b = F.normalize(a.float(), dim=-1), F.normalize(b.float(), dim=-1)
    logits = a @ b.T / tau
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def scaffold_routing_contrastive(router_logits: torch.Tensor, scaffold_id: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """H-MoE's scaffold-routing contrast: molecules sharing a Bemis-Murcko scaffold should route
    alike. Supervised-contrastive loss on each molecule's routing profile (B x T x N -> B x T*N);
    molecules without a scaffold partner in the batch are skipped."""
    profile = F.normalize(torch.softmax(router_logits.float(), dim=-1).flatten(1), dim=-1)
    sim = profile @ profile.T / tau
    eye = torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)
    positive = (scaffold_id[:, None] == scaffold_id[None, :]) & ~eye
    has_positive = positive.any(1)
    if not has_positive.any():
        return sim.new_zeros(())
    log_prob = sim.masked_fill(eye, float("-inf")).log_softmax(dim=1)
    per_row = -torch.where(positive, log_prob, 0.0).sum(1) / positive.sum(1).clamp(min=1)
    return per_row[has_positive].mean()
