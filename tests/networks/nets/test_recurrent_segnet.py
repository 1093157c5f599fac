from __future__ import annotations

import pytest
import torch

from medst.networks.nets import RecurrentSegNet

CASES = [
    (dict(spatial_dims=2, in_channels=3, out_channels=2, channels=(4, 8, 8)), (2, 3, 4, 16, 16), (2, 2, 4, 16, 16)),
    (dict(spatial_dims=2, in_channels=1, out_channels=3, channels=(4, 8), cell="gru", recurrent_levels=2), (1, 1, 3, 9, 11), (1, 3, 3, 9, 11)),
    (dict(spatial_dims=2, in_channels=1, out_channels=2, channels=(4, 8), bidirectional=True), (1, 1, 3, 8, 8), (1, 2, 3, 8, 8)),
    (dict(spatial_dims=3, in_channels=1, out_channels=2, channels=(4, 8)), (1, 1, 3, 8, 8, 8), (1, 2, 3, 8, 8, 8)),
]


@pytest.mark.parametrize("kwargs,in_shape,out_shape", CASES)
def test_shape(kwargs, in_shape, out_shape):
    net = RecurrentSegNet(**kwargs)
    y = net(torch.randn(in_shape))
    assert y.shape == out_shape and torch.isfinite(y).all()


@pytest.mark.parametrize("spatial_dims,cell", [(2, "lstm"), (2, "gru"), (3, "lstm")])
def test_streaming_two_chunks_equal_whole(spatial_dims, cell):
    torch.manual_seed(0)
    net = RecurrentSegNet(spatial_dims, 1, 2, channels=(4, 8), cell=cell, recurrent_levels=2).eval()
    assert net.supports_streaming
    x = torch.randn((1, 1, 5) + (8,) * spatial_dims)
    with torch.no_grad():
        whole, s_whole = net(x, return_state=True)
        a, s = net(x[:, :, :2], return_state=True)
        b, s2 = net(x[:, :, 2:], state=s, return_state=True)
    torch.testing.assert_close(torch.cat([a, b], 2), whole)
    for u, v in zip(s2, s_whole):
        torch.testing.assert_close(u, v)


@pytest.mark.parametrize("spatial_dims,cell", [(2, "lstm"), (2, "gru"), (3, "lstm"), (3, "gru")])
def test_streaming_inferer_fused_equals_usual_loop(spatial_dims, cell):
    """The path StreamingInferer runs (tiles, chunks of frames, states carried): the recurrent layers' fused path
    against their usual loop (ConvRNN.set_fused(False)), float32 tight; in bfloat16 (the inferer autocasts the whole
    network) the fused path's logits are no further from float32 than the usual loop's (both about 2e-2 here)."""
    from medst.inferers import StreamingInferer
    from medst.networks.nets import ConvRNN

    torch.manual_seed(0)
    net = RecurrentSegNet(spatial_dims, 1, 2, channels=(4, 8), cell=cell).eval()
    x = torch.rand((1, 1, 7) + (12,) * spatial_dims)

    def run(fused, precision):
        for m in net.modules():
            if isinstance(m, ConvRNN):
                m.set_fused(fused)
        return StreamingInferer((8,) * spatial_dims, 3, overlap=0.5, precision=precision, progress=False)(x, net)

    usual = run(False, "fp32")
    torch.testing.assert_close(run(True, "fp32"), usual, rtol=1e-5, atol=1e-5)
    d_fused = (run(True, "bf16") - usual).abs().max()
    d_usual = (run(False, "bf16") - usual).abs().max()
    assert 0 < d_usual <= 5e-2 and 0 < d_fused <= 1.5 * d_usual


def test_bidirectional_flag():
    net = RecurrentSegNet(2, 1, 2, channels=(4, 8), bidirectional=True).eval()
    assert not net.supports_streaming
    x = torch.randn(1, 1, 4, 8, 8)
    x2 = x.clone()
    x2[:, :, -1] += 1
    with torch.no_grad():
        assert not torch.allclose(net(x)[:, :, 0], net(x2)[:, :, 0])


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(spatial_dims=4, in_channels=1, out_channels=2),
        dict(spatial_dims=2, in_channels=1, out_channels=2, channels=()),
        dict(spatial_dims=2, in_channels=1, out_channels=2, channels=(4, 8), recurrent_levels=3),
        dict(spatial_dims=2, in_channels=1, out_channels=0),
    ],
)
def test_invalid(kwargs):
    with pytest.raises(ValueError):
        RecurrentSegNet(**kwargs)


def test_wrong_input_rank():
    net = RecurrentSegNet(2, 1, 2, channels=(4,))
    with pytest.raises(ValueError):
        net(torch.randn(1, 1, 8, 8))
