"""A Mamba block with a structure-aware selective step (mamba-ssm parameter names:
in_proj, conv1d, x_proj, dt_proj, A_log, D, out_proj; `struct_proj` is ours):

    Δ_t = softplus(W x_t + U (Â x)_t + b)

where (Â x)_t is the topological-proximity mix of the token's graph neighbourhood."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hsafeat.nn.ssm import selective_scan


def causal_depthwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """conv1d(x, weight, bias, padding=k-1, groups=D)[..., :L] for x laid out B x L x D (channels
    last, as the scan wants them), written as k shifted multiply-adds. oneDNN's conv keeps a cached
    primitive per input shape, and row counts vary batch to batch: measured, that cache grew the
    process by ~30 MB per 1,000 molecules."""
    k, length = weight.shape[-1], x.shape[1]
    padded = F.pad(x, (0, 0, k - 1, 0))
    out = padded[:, :length] * weight[:, 0, 0]
    for j in range(1, k):
        out = out.addcmul(padded[:, j:j + length], weight[:, 0, j])
    return out if bias is None else out + bias


class RMSNorm(nn.Module):
    def __init__(self, d_model: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class StructuredMamba(nn.Module):
    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2, dt_rank: int = 8) -> None:
        super().__init__()
        d_inner = expand * d_model
        self.d_state, self.dt_rank, self.d_conv = d_state, dt_rank, d_conv
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.conv1d = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, d_inner)
        self.struct_proj = nn.Linear(d_model, d_inner, bias=False)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1).float()).repeat(d_inner, 1))  # D x N
        self.D = nn.Parameter(torch.ones(d_inner))
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)
        # Mamba's Δ initialisation: softplus(bias) spread log-uniformly over [1e-3, 1e-1].
        dt = torch.exp(torch.rand(d_inner) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        nn.init.zeros_(self.struct_proj.weight)

    def forward(self, x: torch.Tensor, structure: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """x B x L x d (causal: later padding never reaches earlier tokens), structure B x L x d
        (Â x in the same layout, zero where there is no graph neighbourhood) -> B x L x d; or,
        given positions (B x P indices along L), only those positions: B x P x d.

        The recurrence needs every position, but the gate z, the skip D u and out_proj act on
        each position alone, so with positions they run on just those rows (the same arithmetic,
        a fraction of it: the Graph-Mamba projector reads 4 readout positions out of ~30)."""
        d_inner = self.D.shape[0]
        w_u, w_z = self.in_proj.weight.split(d_inner)
        # Channels last (B x L x D) throughout: the scan steps along L, and transposing to mamba-ssm's
        # B x D x L in memory would make every per-step slice a strided copy.
        u = F.silu(causal_depthwise_conv(x @ w_u.T, self.conv1d.weight, self.conv1d.bias))   # B x L x D
        dt, B, C = self.x_proj(u).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = dt @ self.dt_proj.weight.T + self.struct_proj(structure)                      # B x L x D
        y = selective_scan(
            u.transpose(1, 2), delta.transpose(1, 2), -torch.exp(self.A_log.float()), B.transpose(1, 2),
            C.transpose(1, 2), None, None, self.dt_proj.bias.float(), delta_softplus=True,
            # the read-out C h only where positions are read (a host sync on CUDA, where it is unused)
            first_output=int(positions.min()) if positions is not None and positions.numel() and not x.is_cuda else 0,
        ).transpose(1, 2)                                          # B x L x D
        if positions is not None:
            pick = positions.unsqueeze(-1)
            x, y = x.gather(1, pick.expand(-1, -1, x.shape[-1])), y.gather(1, pick.expand(-1, -1, d_inner))
            u = u.gather(1, pick.expand(-1, -1, d_inner))
        y = (y + u * self.D.float()) * F.silu(x @ w_z.T)          # as selective_scan applies D and z
        return self.out_proj(y.to(x.dtype))
