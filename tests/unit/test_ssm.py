import pytest
import torch
import torch.nn.functional as F

from hsafeat.nn.mamba import StructuredMamba
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


def mamba_block_reference(block, x, structure):
    """StructuredMamba written as mamba-ssm lays it out: B x D x L, torch's conv1d, the scan applying
    D and z itself, every position projected."""
    xz = block.in_proj(x).transpose(1, 2)
    u, z = xz.chunk(2, dim=1)
    u = F.silu(block.conv1d(u)[..., :x.shape[1]])
    dt, B, C = block.x_proj(u.transpose(1, 2)).split([block.dt_rank, block.d_state, block.d_state], dim=-1)
    delta = (dt @ block.dt_proj.weight.T + block.struct_proj(structure)).transpose(1, 2)
    y = selective_scan_ref(u, delta, -torch.exp(block.A_log), B.transpose(1, 2), C.transpose(1, 2),
                           block.D, z, block.dt_proj.bias, delta_softplus=True)
    return block.out_proj(y.transpose(1, 2))


def test_mamba_block_equals_the_mamba_ssm_layout_and_picks_positions_exactly():
    torch.manual_seed(0)
    block = StructuredMamba(16, d_state=4, d_conv=4, expand=1, dt_rank=4).double().eval()
    torch.nn.init.normal_(block.struct_proj.weight, std=0.1)  # zero at init: make the structure count
    # 16 sequences: picked products then have >= 16 rows, as in the encoder (data/buckets.py);
    # with fewer rows MKL may pick another kernel and the last bits differ on some CPUs.
    x, structure = torch.randn(16, 9, 16, dtype=torch.float64), torch.randn(16, 9, 16, dtype=torch.float64)
    with torch.no_grad():
        full = block(x, structure)
        assert torch.allclose(full, mamba_block_reference(block, x, structure), atol=1e-10)
        positions = torch.tensor([[0, 4], [7, 8], [2, 2]] * 5 + [[1, 8]])
        picked = block(x, structure, positions)
    assert torch.equal(picked, full.gather(1, positions[..., None].expand(-1, -1, 16)))


@pytest.mark.parametrize("first_output", [1, 17, 40])
def test_scan_read_out_from_a_later_step_gives_the_same_bits_there(first_output):
    u, delta, A, B, C, D, z, bias = (t.float() for t in random_inputs(n_batch=5, n_dim=16, n_state=8, length=40))
    with torch.inference_mode():
        full = selective_scan_ref(u, delta, A, B, C, D, z, bias, True)
        late = selective_scan_ref(u, delta, A, B, C, D, z, bias, True, first_output=first_output)
    assert torch.equal(late[..., first_output:], full[..., first_output:])


def differentiable_naive_scan(u, delta, A, B, C, D, z, delta_bias):
    """naive_scan with out-of-place ops only, so autograd can differentiate it (the gradient oracle)."""
    rows = []
    for b in range(u.shape[0]):
        channels = []
        for d in range(u.shape[1]):
            h, ys = torch.zeros(A.shape[1], dtype=u.dtype), []
            for t in range(u.shape[2]):
                dt = F.softplus(delta[b, d, t] + delta_bias[d])
                h = torch.exp(dt * A[d]) * h + dt * B[b, :, t] * u[b, d, t]
                ys.append((h * C[b, :, t]).sum() + D[d] * u[b, d, t])
            channels.append(torch.stack(ys) * F.silu(z[b, d]))
        rows.append(torch.stack(channels))
    return torch.stack(rows)


@pytest.mark.parametrize("length", [1, 2, 9, 16, 17, 40])  # CHUNK is 16
def test_training_path_gradients_equal_naive_recurrence(length):
    """The scan's written-out backward (_ScanFunction) against autograd through the naive loop."""
    inputs = [t.requires_grad_() for t in random_inputs(n_batch=2, n_dim=3, n_state=4, length=length, seed=5)]
    weight = torch.randn(2, 3, length, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    grads = []
    for scan in (selective_scan_ref, lambda u, d, A, B, C, D, z, b, _: differentiable_naive_scan(u, d, A, B, C, D, z, b)):
        y = scan(*inputs, True)
        grads.append(torch.autograd.grad((y * weight).sum(), inputs))
    for ours, naive in zip(*grads, strict=True):
        assert torch.allclose(ours, naive, atol=1e-10)


def test_training_path_passes_gradcheck():
    u, delta, A, B, C, D, z, bias = random_inputs(n_batch=2, n_dim=2, n_state=3, length=5, seed=7)
    args = [t.requires_grad_() for t in (u, delta, A, B, C)]
    assert torch.autograd.gradcheck(lambda *a: selective_scan_ref(*a, D, z, bias, True), args)


def test_training_path_forward_equals_inference_path():
    u, delta, A, B, C, D, z, bias = random_inputs(n_batch=3, length=11, seed=8, dtype=torch.float32)
    with torch.no_grad():
        inference = selective_scan_ref(u, delta, A, B, C, D, z, bias, True)
    training = selective_scan_ref(u.requires_grad_(), delta, A, B, C, D, z, bias, True)
    assert torch.allclose(training.detach(), inference, atol=1e-6)
