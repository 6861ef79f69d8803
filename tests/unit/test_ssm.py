import pytest
import torch
import torch.nn.functional as F

from hsafeat.nn.ssm import fused_scan_available, selective_scan, selective_scan_ref


def naive_scan(u, delta, A, B, C, D, z, delta_bias):
    """Step-by-step recurrence, one sequence and one channel at a time."""
    n_batch, n_dim, length = u.shape
    y = torch.zeros_like(u)
    for b in range(n_batch):
        for d in range(n_dim):
            h = torch.zeros(A.shape[1], dtype=torch.float64)
            for t in range(length):
                dt = F.softplus(delta[b, d, t] + delta_bias[d])
                h = torch.exp(dt * A[d]) * h + dt * B[b, :, t] * u[b, d, t]
                y[b, d, t] = (h * C[b, :, t]).sum() + D[d] * u[b, d, t]
            y[b, d] = y[b, d] * F.silu(z[b, d])
    return y


def random_inputs(n_batch=2, n_dim=3, n_state=4, length=7, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    return (r(n_batch, n_dim, length), r(n_batch, n_dim, length), -torch.exp(r(n_dim, n_state)),
            r(n_batch, n_state, length), r(n_batch, n_state, length), r(n_dim), r(n_batch, n_dim, length), r(n_dim))


def test_reference_scan_equals_naive_recurrence():
    u, delta, A, B, C, D, z, bias = random_inputs()
    ref = selective_scan_ref(u, delta, A, B, C, D, z, bias, delta_softplus=True)
    assert torch.allclose(ref, naive_scan(u, delta, A, B, C, D, z, bias), atol=1e-10)


def test_inference_path_equals_autograd_path():
    u, delta, A, B, C, D, z, bias = random_inputs(n_batch=3, length=11, seed=1)
    with torch.no_grad():
        fast = selective_scan_ref(u, delta, A, B, C, D, z, bias, delta_softplus=True)
    u.requires_grad_(True)
    slow = selective_scan_ref(u, delta, A, B, C, D, z, bias, delta_softplus=True)
    assert torch.allclose(fast, slow.detach(), atol=1e-12)
    slow.sum().backward()
    assert u.grad is not None and torch.isfinite(u.grad).all()


def test_scan_is_causal():
    u, delta, A, B, C, D, z, bias = random_inputs(length=9)
    full = selective_scan_ref(u, delta, A, B, C, D, z, bias, delta_softplus=True)
    u2 = u.clone()
    u2[..., 5:] += 10.0
    changed = selective_scan_ref(u2, delta, A, B, C, D, z, bias, delta_softplus=True)
    assert torch.equal(full[..., :5], changed[..., :5])


def test_dispatch_uses_reference_on_cpu():
    args = random_inputs(dtype=torch.float32)
    u, delta, A, B, C, D, z, bias = args
    assert torch.equal(selective_scan(u, delta, A, B, C, D, z, bias, True),
                       selective_scan_ref(u, delta, A, B, C, D, z, bias, True))


@pytest.mark.cuda
@pytest.mark.skipif(not fused_scan_available(), reason="needs CUDA and mamba-ssm")
def test_fused_kernel_matches_reference():
    u, delta, A, B, C, D, z, bias = (t.float().cuda() for t in random_inputs(n_batch=4, n_dim=16, n_state=8, length=40))
    fused = selective_scan(u, delta, A, B, C, D, z, bias, True)
    ref = selective_scan_ref(u, delta, A, B, C, D, z, bias, True)
    assert torch.allclose(fused, ref, atol=1e-4, rtol=1e-3)
