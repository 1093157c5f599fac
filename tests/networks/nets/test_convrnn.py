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
