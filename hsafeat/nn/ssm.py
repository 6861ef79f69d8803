"""The selective scan (Mamba, Gu & Dao 2023), with mamba-ssm's argument conventions:

    h_t = exp(softplus(Δ_t + b) A) h_{t-1} + softplus(Δ_t + b) B_t u_t,    y_t = C_t h_t + D u_t,
    out = y * silu(z)

`selective_scan_ref` is the pure-PyTorch reference (the CPU path and the test oracle).
`selective_scan` uses mamba-ssm's fused CUDA kernel when it is importable and the tensors are on a
GPU, and the reference otherwise; both take identical parameters."""
from __future__ import annotations

import torch
import torch.nn.functional as F

try:  # optional extra: hsafeat[cuda]
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn as _fused_scan
except Exception:  # noqa: BLE001 - any import failure (no CUDA, ABI mismatch) means "not available"
    _fused_scan = None


def fused_scan_available() -> bool:
    return _fused_scan is not None and torch.cuda.is_available()


def selective_scan_ref(
    u: torch.Tensor,            # B x D x L
    delta: torch.Tensor,        # B x D x L
    A: torch.Tensor,            # D x N
    B: torch.Tensor,            # B x N x L
    C: torch.Tensor,            # B x N x L
    D: torch.Tensor | None = None,        # D
    z: torch.Tensor | None = None,        # B x D x L
    delta_bias: torch.Tensor | None = None,  # D
    delta_softplus: bool = False,
    first_output: int = 0,
) -> torch.Tensor:             # B x D x L
    """first_output: y is computed from that step on only (the state still runs through every
    step; y before it is not meaningful), for callers that read only the last positions."""
    dtype = u.dtype
    work = torch.promote_types(dtype, torch.float32)  # at least float32 (float64 stays, for tests)
    u, delta, A, B, C = u.to(work), delta.to(work), A.to(work), B.to(work), C.to(work)
    if delta_bias is not None:
        delta = delta + delta_bias[None, :, None].to(work)
    if delta_softplus:
        delta = F.softplus(delta)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (u, delta, A, B, C)):
        y = _scan_autograd(u, delta, A, B, C)
    else:
        y = _scan_inplace(u, delta, A, B, C, first_output)
    if D is not None:
        y = y + u * D[None, :, None].to(work)
    if z is not None:
        y = y * F.silu(z.to(work))
    return y.to(dtype)


def _scan_autograd(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """Training path: the recurrence with its gradient written out (_ScanFunction)."""
    return _ScanFunction.apply(u, delta, A, B, C)


CHUNK = 16  # positions between the states the training scan keeps (the rest are recomputed in backward)


class _ScanFunction(torch.autograd.Function):
    """h_t = a_t h_{t-1} + x_t with a_t = exp(Δ_t A), x_t = Δ_t u_t B_t, and y_t = C_t h_t, with
    its backward written out: g_t = C_t gy_t + a_{t+1} g_{t+1} is the same recurrence run
    backwards, and each position's parameter gradients are read off g_t and h_{t-1}.

    Autograd through the plain loop costs O(L²): the backward of each position's slice writes a
    zero tensor as large as the whole input, and five B x D x N tensors are kept per position (a
    batch of 128 broad-corpus molecules of up to 248 atoms, i.e. 768 rows of 252 positions: 59 s
    and 10.6 GB per training step, 47 % of it filling zeros). Here the state is kept every CHUNK
    positions only and each chunk is recomputed in backward, so memory is L / CHUNK states, and
    every step works on one B x N x D state in the inference path's layout (D innermost)."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,  # noqa: ANN001
                C: torch.Tensor) -> torch.Tensor:
        dt, du, b_t, c_t, a_t = _time_major(u, delta, A, B, C)
        length = u.shape[2]
        h = u.new_zeros(u.shape[0], A.shape[1], u.shape[1])                   # B x N x D
        kept = u.new_empty((length + CHUNK - 1) // CHUNK, *h.shape)            # h before each chunk
        decay = torch.empty_like(h)
        y = u.new_empty(length, u.shape[0], 1, u.shape[1])                     # L x B x 1 x D
        for t in range(length):
            if t % CHUNK == 0:
                kept[t // CHUNK] = h
            torch.mul(dt[t], a_t, out=decay).exp_()
            h.mul_(decay).addcmul_(du[t], b_t[t])
            torch.bmm(c_t[t], h, out=y[t])
        ctx.save_for_backward(u, delta, A, B, C, kept)
        return y.squeeze(2).permute(1, 2, 0)                                   # B x D x L

    @staticmethod
    def backward(ctx, gy: torch.Tensor):  # noqa: ANN001, ANN205
        u, delta, A, B, C, kept = ctx.saved_tensors
        dt, du, b_t, c_t, a_t = _time_major(u, delta, A, B, C)
        length, n_rows = u.shape[2], u.shape[0]
        gy_t = gy.to(u.dtype).permute(2, 0, 1).contiguous().unsqueeze(-1)    # L x B x D x 1
        g = torch.zeros_like(kept[0])                                          # dL/dh_t, B x N x D
        g_dt, g_du = torch.empty_like(dt), torch.empty_like(dt)                # L x B x 1 x D
        g_b, g_c = u.new_empty(length, n_rows, A.shape[1], 1), u.new_empty(length, n_rows, A.shape[1], 1)
        g_a = torch.zeros_like(g)                                              # Σ over positions, B x N x D
        states = u.new_empty(CHUNK + 1, *g.shape)                              # h_{t0-1} .. h_{t0+CHUNK-1}
        decays = u.new_empty(CHUNK, *g.shape)
        g_da = torch.empty_like(g)
        for start in range(((length - 1) // CHUNK) * CHUNK, -1, -CHUNK):
            stop = min(start + CHUNK, length)
            states[0] = kept[start // CHUNK]
            for j, t in enumerate(range(start, stop)):                        # this chunk's states again
                torch.mul(dt[t], a_t, out=decays[j]).exp_()
                torch.addcmul(du[t] * b_t[t], states[j], decays[j], out=states[j + 1])
            for j, t in reversed(list(enumerate(range(start, stop)))):
                g.baddbmm_(c_t[t].transpose(1, 2), gy_t[t].transpose(1, 2))   # + C_t^T gy_t
                torch.bmm(states[j + 1], gy_t[t], out=g_c[t])                  # Σ_d h_t gy_t
                torch.mul(g, states[j], out=g_da).mul_(decays[j])              # dL/d(Δ_t A)
                g_dt[t] = (g_da * a_t).sum(1, keepdim=True)
                g_a.addcmul_(g_da, dt[t])
                torch.bmm(b_t[t].transpose(1, 2), g, out=g_du[t])              # Σ_n B_t g_t
                torch.bmm(g, du[t].transpose(1, 2), out=g_b[t])                # Σ_d g_t Δ_t u_t
                g.mul_(decays[j])                                              # on to h_{t-1}
        g_du = g_du.squeeze(2).permute(1, 2, 0)                                # B x D x L
        g_delta = g_dt.squeeze(2).permute(1, 2, 0) + g_du * u
        return g_du * delta, g_delta, g_a.sum(0).t(), g_b.squeeze(-1).permute(1, 2, 0), g_c.squeeze(-1).permute(1, 2, 0)


def _time_major(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor) -> tuple:
    """The scan's inputs laid out for one position at a time (as _scan_inplace)."""
    dt = delta.permute(2, 0, 1).contiguous().unsqueeze(2)                      # L x B x 1 x D
    du = (delta * u).permute(2, 0, 1).contiguous().unsqueeze(2)                # L x B x 1 x D
    b_t = B.permute(2, 0, 1).contiguous().unsqueeze(-1)                        # L x B x N x 1
    c_t = C.permute(2, 0, 1).contiguous().unsqueeze(2)                         # L x B x 1 x N
    return dt, du, b_t, c_t, A.t().contiguous()                                # ..., N x D


def _scan_inplace(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, first_output: int = 0,
) -> torch.Tensor:
    """Inference path, same recurrence: time-major contiguous inputs, reused buffers, and the
    state laid out B x N x D so every elementwise step runs along the long D axis. Fresh tensors
    at every step, or a state with the short N axis innermost, cost more than the arithmetic
    (measured ~6x and ~2x slower on CPU). The read-out C h is skipped before first_output."""
    length = u.shape[2]
    dt = delta.permute(2, 0, 1).contiguous().unsqueeze(2)                      # L x B x 1 x D
    du = (delta * u).permute(2, 0, 1).contiguous().unsqueeze(2)                # L x B x 1 x D
    b_t = B.permute(2, 0, 1).contiguous().unsqueeze(-1)                        # L x B x N x 1
    c_t = C.permute(2, 0, 1).contiguous().unsqueeze(2)                         # L x B x 1 x N
    a_t = A.t().contiguous()                                                   # N x D
    h = u.new_zeros(u.shape[0], A.shape[1], u.shape[1])                        # B x N x D
    decay = torch.empty_like(h)
    first_output = min(max(first_output, 0), length)
    y = u.new_empty(length, u.shape[0], 1, u.shape[1])                         # L x B x 1 x D
    y[:first_output] = 0
    for t in range(length):
        torch.mul(dt[t], a_t, out=decay).exp_()
        h.mul_(decay).addcmul_(du[t], b_t[t])
        if t >= first_output:
            torch.bmm(c_t[t], h, out=y[t])
    return y.squeeze(2).permute(1, 2, 0)                                       # B x D x L


def selective_scan(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
    D: torch.Tensor | None = None, z: torch.Tensor | None = None, delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False, first_output: int = 0,
) -> torch.Tensor:
    """first_output: a hint that y before that step is not read (the reference skips computing it)."""
    if _fused_scan is not None and u.is_cuda:
        return _fused_scan(u.contiguous(), delta.contiguous(), A.contiguous(), B.contiguous(), C.contiguous(),
                           D, z.contiguous() if z is not None else None, delta_bias, delta_softplus)
    return selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus, first_output)
