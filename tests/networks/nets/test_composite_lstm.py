from __future__ import annotations

import pytest
import torch

from medst.networks import create_network
from medst.networks.nets import CompositeLSTM


@pytest.mark.parametrize("conditional", [False, True])
@pytest.mark.parametrize(
    "kwargs", [dict(fully_connected=True, frame_size=(8, 8), patch_size=1, hidden_channels=(5,)),
               dict(fully_connected=False, patch_size=2, hidden_channels=(4, 3))]
)
def test_shapes_context_reconstruction_and_range(kwargs, conditional):
    torch.manual_seed(0)
    net = CompositeLSTM(in_channels=1, output_frames=3, conditional=conditional, **kwargs)
    x = torch.rand(2, 1, 4, 8, 8)
    y = net(x)
    assert y.shape == (2, 1, 3, 8, 8)
    assert y.min() >= 0.0 and y.max() <= 1.0
    y2, recon = net(x, return_reconstruction=True)
    torch.testing.assert_close(y2, y)
    assert recon.shape == (2, 1, 4, 8, 8)
    ctx = net(x, return_context=True)
    assert ctx.shape == (2, 1, 4 - 1 + 3, 8, 8)
    torch.testing.assert_close(ctx[:, :, 3:], y)  # the forecast is unchanged by asking for the context
    torch.testing.assert_close(ctx[:, :, :3], recon[:, :, 1:])  # the context: reconstructions of frames 2..T_in
    ctx.mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def test_reconstruction_runs_in_reverse_order():
    """The reconstruction decoder's first step is the LAST input frame (returned at the end, in time order)."""
    torch.manual_seed(0)
    net = CompositeLSTM(hidden_channels=(4,), output_frames=1, patch_size=2)
    x = torch.rand(1, 1, 3, 8, 8)
    _, recon = net(x, return_reconstruction=True)
    feats = net._features(x.transpose(1, 2).reshape(3, 1, 8, 8)).unsqueeze(0)
    _, state = net.encoder.forward_frames(feats)
    first = net._frames(net.reconstructor(state, 1, feats[:, 0]), 1, 8, 8)
    torch.testing.assert_close(recon[:, :, -1:], first)


def test_fully_connected_cell_is_an_lstm():
    """The fully connected model's cells (kernel 1 on a length-1 axis) compute torch.nn.LSTMCell exactly."""
    torch.manual_seed(0)
    net = CompositeLSTM(fully_connected=True, frame_size=(2, 3), patch_size=1, hidden_channels=(5,), output_frames=1)
    cell = net.encoder.layers[0].fwd.cell
    ref = torch.nn.LSTMCell(6, 5)
    w = cell.conv.weight[..., 0]  # (4H, C + H), gates i, f, o, g
    order = torch.cat([torch.arange(0, 10), torch.arange(15, 20), torch.arange(10, 15)])  # -> torch's i, f, g, o
    with torch.no_grad():
        ref.weight_ih.copy_(w[order, :6])
        ref.weight_hh.copy_(w[order, 6:])
        ref.bias_ih.copy_(cell.conv.bias[order])
        ref.bias_hh.zero_()
    x, h, c = torch.randn(3, 6), torch.randn(3, 5), torch.randn(3, 5)
    h1, (_, c1) = cell(x[..., None], [h[..., None], c[..., None]])
    h2, c2 = ref(x, (h, c))
    torch.testing.assert_close(h1[..., 0], h2, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(c1[..., 0], c2, rtol=1e-5, atol=1e-6)


def _lstm(n_in: int, n: int) -> int:
    return 4 * n * (n_in + n) + 4 * n  # the fused gate weight (4n, n_in + n) and one bias per gate


@pytest.mark.parametrize("conditional", [False, True])
def test_srivastava_preset_parameter_count(conditional):
    """The paper's Moving-MNIST composite model: 64x64 = 4096 inputs, one 2048-unit LSTM each for the encoder and the
    two decoders, a linear read-out 2048 -> 4096 per decoder. The paper gives no count; derived: encoder
    4*2048*(4096 + 2048) + 4*2048 = 50,339,840; an unconditioned decoder reads one zero channel (1 input, bias
    only), 4*2048*2049 + 4*2048 = 16,793,600; a conditional one reads the last generated frame (4096 inputs), as the
    encoder; each read-out 2048*4096 + 4096 = 8,392,704. Unconditioned: 100,712,448; conditional: 167,804,928."""
    with torch.device("meta"):
        net = create_network("composite_lstm_fc_srivastava", conditional=conditional)
    n, d = 2048, 4096
    decoder = _lstm(d if conditional else 1, n)
    expected = _lstm(d, n) + 2 * decoder + 2 * (n * d + d)
    assert expected == (167_804_928 if conditional else 100_712_448)
    assert sum(p.numel() for p in net.parameters()) == expected


def test_small_presets_build_and_run_on_64x64():
    x = torch.rand(1, 1, 3, 64, 64)
    for name in ("composite_lstm_fc_small", "composite_convlstm_small"):
        net = create_network(name, output_frames=2)
        assert net(x).shape == (1, 1, 2, 64, 64)


def test_errors():
    with pytest.raises(ValueError, match="frame_size"):
        CompositeLSTM(fully_connected=True, patch_size=1)
    with pytest.raises(ValueError, match="patch_size must be 1"):
        CompositeLSTM(fully_connected=True, frame_size=(8, 8), patch_size=2)
    with pytest.raises(ValueError, match="spatial_dims"):
        CompositeLSTM(spatial_dims=3)
    with pytest.raises(ValueError, match="output_frames"):
        CompositeLSTM(output_frames=0)
    net = CompositeLSTM(fully_connected=True, frame_size=(8, 8), patch_size=1, hidden_channels=(3,), output_frames=1)
    with pytest.raises(ValueError, match=r"frames of \[8, 8\]"):
        net(torch.rand(1, 1, 2, 16, 16))
    with pytest.raises(ValueError, match="expected frames"):
        net(torch.rand(1, 2, 2, 8, 8))
