from __future__ import annotations

import pytest
import torch

from medst.networks.blocks import ConvGRUCell, ConvLSTMCell, get_cell_class


@pytest.mark.parametrize("cls", [ConvLSTMCell, ConvGRUCell])
@pytest.mark.parametrize("spatial_dims", [1, 2, 3])
@pytest.mark.parametrize("norm", [None, "group"])
def test_step_matches_plain_forward(cls, spatial_dims, norm):
    torch.manual_seed(0)
    kw = dict(peephole=True) if cls is ConvLSTMCell else {}
    cell = cls(spatial_dims, 3, 4, norm=norm, norm_groups=2, **kw)
    x = torch.randn((2, 3) + (5,) * spatial_dims)
    state = [torch.randn((2, 4) + (5,) * spatial_dims) for _ in range(cell.num_states)]
    h_ref, s_ref = cell(x, state)
    h, s = cell.step(cell.input_gates(x), state)
    assert h.shape == (2, 4) + (5,) * spatial_dims
    torch.testing.assert_close(h, h_ref)
    for a, b in zip(s, s_ref):
        torch.testing.assert_close(a, b)


def test_lstm_matches_the_usual_formulation():
    # the widely used PyTorch ConvLSTM: conv over cat([x, h]) -> i, f, o, g
    torch.manual_seed(0)
    cell = ConvLSTMCell(2, 3, 4)
    x, h, c = torch.randn(1, 3, 6, 6), torch.randn(1, 4, 6, 6), torch.randn(1, 4, 6, 6)
    i, f, o, g = torch.split(cell.conv(torch.cat([x, h], 1)), 4, dim=1)
    c_ref = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_ref = torch.sigmoid(o) * torch.tanh(c_ref)
    h_new, (h2, c_new) = cell(x, [h, c])
    torch.testing.assert_close(h_new, h_ref)
    torch.testing.assert_close(c_new, c_ref)


def test_gru_reset_gate_acts_on_the_hidden_state():
    torch.manual_seed(0)
    cell = ConvGRUCell(2, 2, 3)
    x, h = torch.randn(1, 2, 5, 5), torch.randn(1, 3, 5, 5)
    w, b = cell.conv.weight, cell.conv.bias
    zr = torch.nn.functional.conv2d(torch.cat([x, h], 1), w[:6], b[:6], padding=1)
    z, r = torch.sigmoid(zr).chunk(2, 1)
    n = torch.tanh(torch.nn.functional.conv2d(torch.cat([x, r * h], 1), w[6:], b[6:], padding=1))
    h_new, _ = cell(x, [h])
    torch.testing.assert_close(h_new, (1 - z) * n + z * h)


def test_peephole_weights_do_not_fix_the_image_size():
    cell = ConvLSTMCell(2, 1, 4, peephole=True)
    assert cell.peephole_weight.shape == (3, 4, 1, 1)
    for size in (5, 9):
        h, _ = cell(torch.randn(1, 1, size, size + 2))
        assert h.shape == (1, 4, size, size + 2)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(spatial_dims=4, in_channels=1, hidden_channels=2),
        dict(spatial_dims=2, in_channels=0, hidden_channels=2),
        dict(spatial_dims=2, in_channels=1, hidden_channels=2, kernel_size=2),
        dict(spatial_dims=2, in_channels=1, hidden_channels=2, norm="layer"),
        dict(spatial_dims=2, in_channels=1, hidden_channels=6, norm="group", norm_groups=4),
    ],
)
def test_invalid_arguments(kwargs):
    with pytest.raises(ValueError):
        ConvLSTMCell(**kwargs)


def test_get_cell_class():
    assert get_cell_class("LSTM") is ConvLSTMCell and get_cell_class(ConvGRUCell) is ConvGRUCell
    with pytest.raises(ValueError):
        get_cell_class("rnn")
