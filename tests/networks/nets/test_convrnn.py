from __future__ import annotations

import pytest
import torch

from medst.networks.nets import ConvRNN

CASES = [
    (dict(spatial_dims=2, in_channels=2, hidden_channels=(4, 6), cell="lstm"), (2, 2, 5, 7, 8), (2, 6, 5, 7, 8)),
    (dict(spatial_dims=2, in_channels=2, hidden_channels=4, num_layers=2, cell="gru"), (1, 2, 5, 6, 6), (1, 4, 5, 6, 6)),
    (dict(spatial_dims=3, in_channels=1, hidden_channels=3, cell="lstm", residual=True), (1, 1, 4, 5, 5, 5), (1, 3, 4, 5, 5, 5)),
    (dict(spatial_dims=3, in_channels=1, hidden_channels=(2, 3), cell="gru", peephole=False), (1, 1, 4, 4, 4, 4), (1, 3, 4, 4, 4, 4)),
    (dict(spatial_dims=2, in_channels=2, hidden_channels=3, bidirectional=True), (1, 2, 4, 6, 6), (1, 6, 4, 6, 6)),
    (dict(spatial_dims=2, in_channels=2, hidden_channels=3, return_sequences=False), (1, 2, 4, 6, 6), (1, 3, 6, 6)),
    (dict(spatial_dims=2, in_channels=2, hidden_channels=3, return_sequences=False, bidirectional=True), (1, 2, 4, 6, 6), (1, 6, 6, 6)),
]


@pytest.mark.parametrize("kwargs,in_shape,out_shape", CASES)
def test_shape_and_batched_input_equals_per_step(kwargs, in_shape, out_shape):
    torch.manual_seed(0)
    net = ConvRNN(**kwargs)
    x = torch.randn(in_shape)
    net.set_batched_input(True)
    y, state = net(x, return_state=True)
    assert y.shape == out_shape
    assert len(state) == net.num_state_tensors
    assert all(s.shape[0] == in_shape[0] and s.shape[2:] == in_shape[3:] for s in state)
    net.set_batched_input(False)
    torch.testing.assert_close(net(x), y, rtol=1e-5, atol=1e-6)
    net.set_batched_input(None)  # the device's default (per-step on CPUs)
    torch.testing.assert_close(net(x), y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("batched", [True, False])
def test_two_chunks_with_state_equal_whole(spatial_dims, cell, batched):
    torch.manual_seed(0)
    net = ConvRNN(spatial_dims, 2, (3, 4), cell=cell, residual=True, batched_input=batched)
    assert net.supports_streaming
    x = torch.randn((1, 2, 6) + (5,) * spatial_dims)
    whole = net(x)
    a, s = net(x[:, :, :4], return_state=True)
    b = net(x[:, :, 4:], state=s)
    torch.testing.assert_close(torch.cat([a, b], 2), whole)
    # without the state the second chunk differs (the state carries information)
    assert not torch.allclose(net(x[:, :, 4:]), whole[:, :, 4:])


def test_bidirectional_sees_the_future():
    torch.manual_seed(0)
    x = torch.randn(1, 1, 5, 6, 6)
    x2 = x.clone()
    x2[:, :, -1] += 1.0
    uni = ConvRNN(2, 1, 3)
    assert torch.equal(uni(x)[:, :, 0], uni(x2)[:, :, 0])
    bi = ConvRNN(2, 1, 3, bidirectional=True)
    assert not bi.supports_streaming
    assert not torch.allclose(bi(x)[:, :, 0], bi(x2)[:, :, 0])


@pytest.mark.parametrize("flag", [dict(peephole=True), dict(residual=True), dict(cell="gru"), dict(norm="group")])
def test_variants_change_the_output(flag):
    x = torch.randn(1, 2, 4, 6, 6)
    torch.manual_seed(0)
    base = ConvRNN(2, 2, (4, 4))
    torch.manual_seed(0)
    var = ConvRNN(2, 2, (4, 4), **flag)
    assert not torch.allclose(base(x), var(x), atol=1e-4)


def test_invalid():
    with pytest.raises(ValueError):
        ConvRNN(2, 1, 4, cell="gru", peephole=True)
    with pytest.raises(ValueError):
        ConvRNN(2, 1, [], cell="lstm")
    with pytest.raises(ValueError):
        ConvRNN(2, 1, 4, num_layers=0)
    net = ConvRNN(2, 1, 4)
    with pytest.raises(ValueError):
        net(torch.randn(1, 1, 4, 4))  # missing the time axis
    with pytest.raises(ValueError):
        net(torch.randn(1, 1, 2, 4, 4), state=[torch.zeros(1, 4, 4, 4)])


FUSED_CASES = [
    dict(spatial_dims=2, in_channels=2, hidden_channels=(4, 6)),
    dict(spatial_dims=2, in_channels=2, hidden_channels=(4, 6), cell="gru"),
    dict(spatial_dims=3, in_channels=1, hidden_channels=3, cell="gru", residual=True, bias=False),
    dict(spatial_dims=3, in_channels=1, hidden_channels=3, residual=True),
    dict(spatial_dims=2, in_channels=2, hidden_channels=3, bidirectional=True),
    dict(spatial_dims=2, in_channels=1, hidden_channels=5, bias=False),
    dict(spatial_dims=1, in_channels=2, hidden_channels=4),
]


def _count_fused_steps(net, monkeypatch):
    """Count the fused steps the network's cells take (to assert which path ran)."""
    from medst.networks.blocks.recurrent_cells import ConvGRUCell, ConvLSTMCell

    calls = []
    for cls in (ConvLSTMCell, ConvGRUCell):

        def counting(self, ctx, x, out, original=cls.fused_step):
            calls.append(1)
            return original(self, ctx, x, out)

        monkeypatch.setattr(cls, "fused_step", counting)
    return calls


@pytest.mark.parametrize("kwargs", FUSED_CASES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_inference_path_equals_plain_path(kwargs, channels_last, monkeypatch):
    torch.manual_seed(0)
    net = ConvRNN(**kwargs)
    for m in net.modules():
        if hasattr(m, "channels_last"):
            m.channels_last = channels_last
    x = torch.randn((1, kwargs["in_channels"], 5) + (6,) * kwargs["spatial_dims"])
    calls = _count_fused_steps(net, monkeypatch)
    plain, plain_state = net(x, return_state=True)  # autograd on: the plain per-step path
    assert plain.requires_grad and not calls
    with torch.no_grad():
        fused, fused_state = net(x, return_state=True)
    assert len(calls) == 5 * len(net.layers) * (2 if kwargs.get("bidirectional") else 1)
    torch.testing.assert_close(fused, plain.detach(), rtol=1e-5, atol=1e-6)
    for a, b in zip(fused_state, plain_state):
        torch.testing.assert_close(a, b.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fused_path_two_chunks_equal_whole(spatial_dims, cell):
    torch.manual_seed(0)
    net = ConvRNN(spatial_dims, 2, (3, 4), cell=cell, residual=True).eval()
    x = torch.randn((1, 2, 6) + (5,) * spatial_dims)
    with torch.inference_mode():
        whole = net(x)
        a, s = net(x[:, :, :4], return_state=True)
        b = net(x[:, :, 4:], state=s)
    torch.testing.assert_close(torch.cat([a, b], 2), whole)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fused_path_in_bfloat16_stays_close(cell):
    """bf16 gate convolutions and sigmoids, float32 states: within a few thousandths of float32 per frame."""
    torch.manual_seed(0)
    net = ConvRNN(2, 1, 8, cell=cell).eval()
    x = torch.rand(1, 1, 12, 16, 16)
    with torch.inference_mode():
        ref = net(x)
        for m in net.modules():
            if hasattr(m, "compute_dtype"):
                m.compute_dtype = torch.bfloat16
        y, state = net(x, return_state=True)
    assert y.dtype == torch.float32 and all(s.dtype == torch.float32 for s in state)
    assert 0 < (y - ref).abs().max() < 2e-2


@pytest.mark.parametrize("kwargs", [dict(peephole=True), dict(norm="group"), dict(cell="gru", norm="group")])
def test_cells_without_fused_path_fall_back(kwargs, monkeypatch):
    torch.manual_seed(0)
    net = ConvRNN(2, 1, 4, **kwargs)
    calls = _count_fused_steps(net, monkeypatch)
    x = torch.randn(1, 1, 3, 6, 6)
    plain = net(x)
    with torch.no_grad():
        torch.testing.assert_close(net(x), plain.detach())
    assert not calls


def _set_fused(net, fused):
    for m in net.modules():
        if isinstance(m, ConvRNN):
            m.set_fused(fused)


def _per_frame_max(a, b):
    d = (a.float() - b.float()).abs().transpose(0, 2)
    return d.reshape(d.shape[0], -1).amax(1)


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("in_channels", [1, 8])
def test_fused_chunks_equal_usual_loop_float32(spatial_dims, cell, in_channels, monkeypatch):
    """The fused path streamed in chunks (state carried) against set_fused(False)'s usual loop over the whole clip."""
    torch.manual_seed(0)
    net = ConvRNN(spatial_dims, in_channels, (6, 5), cell=cell).eval()
    x = torch.randn((2, in_channels, 7) + (6,) * spatial_dims)
    calls = _count_fused_steps(net, monkeypatch)
    with torch.inference_mode():
        net.set_fused(False)
        usual, usual_state = net(x, return_state=True)
        assert not calls
        net.set_fused(True)
        a, s = net(x[:, :, :3], return_state=True)
        b, s = net(x[:, :, 3:], state=s, return_state=True)
    assert len(calls) == 7 * 2
    assert _per_frame_max(torch.cat([a, b], 2), usual).max() <= 1e-5
    for p, q in zip(s, usual_state):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fused_under_autocast_runs_bf16_within_tolerance(spatial_dims, cell):
    """Under CPU autocast the fused path convolves in bfloat16 (it calls oneDNN directly, which autocast does not
    see): within the stated 5e-3 per frame of the float32 usual loop, like the usual loop under autocast, and
    chunks carrying the state equal the whole clip."""
    torch.manual_seed(0)
    net = ConvRNN(spatial_dims, 4, 8, cell=cell).eval()
    x = torch.rand((1, 4, 8) + (8,) * spatial_dims)
    with torch.inference_mode():
        net.set_fused(False)
        ref = net(x)
        with torch.autocast("cpu", torch.bfloat16):
            usual16 = net(x)
            net.set_fused(True)
            fused16, state = net(x, return_state=True)
            a, s = net(x[:, :, :5], return_state=True)
            b = net(x[:, :, 5:], state=s)
    assert all(t.dtype == torch.float32 for t in state)  # the cell state stays float32
    d_fused, d_usual = _per_frame_max(fused16, ref), _per_frame_max(usual16, ref)
    assert d_usual.max() <= 5e-3
    assert 1e-5 < d_fused.max() <= 5e-3  # bf16 indeed, and within tolerance
    torch.testing.assert_close(torch.cat([a, b], 2), fused16)


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")
def test_fused_path_avoids_pytorchs_slow_conv3d():
    """F.conv3d hands a float32 batch-1 input this small to slow_conv3d; the fused path calls oneDNN instead."""
    from torch.profiler import profile

    torch.manual_seed(0)
    net = ConvRNN(3, 16, 16).eval()
    x = torch.randn(1, 16, 2, 4, 4, 4)

    def ops(fused):
        net.set_fused(fused)
        with torch.inference_mode(), profile() as prof:
            y = net(x)
        return {e.key for e in prof.key_averages()}, y

    usual_ops, usual = ops(False)
    fused_ops, fused = ops(True)
    assert "aten::slow_conv3d_forward" in usual_ops  # what the usual loop gets from PyTorch's heuristic
    assert "aten::slow_conv3d_forward" not in fused_ops and "aten::mkldnn_convolution" in fused_ops
    torch.testing.assert_close(fused, usual, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fused_path_in_dtypes_onednn_does_not_serve(dtype, cell, monkeypatch):
    """float64 (and float16 on CPUs without AVX512-FP16) fall back to F.conv*d on the fused path."""
    torch.manual_seed(0)
    net = ConvRNN(3, 2, 4, cell=cell).eval().to(dtype)
    x = torch.randn(1, 2, 3, 4, 4, 4, dtype=dtype)
    calls = _count_fused_steps(net, monkeypatch)
    with torch.inference_mode():
        net.set_fused(False)
        usual = net(x)
        net.set_fused(True)
        fused = net(x)
    assert len(calls) == 3 and fused.dtype == dtype
    tol = 1e-10 if dtype == torch.float64 else 1e-2
    torch.testing.assert_close(fused, usual, rtol=tol, atol=tol)
