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


def _peephole_reference(cell, x, h, c):
    """Shi et al. 2015, eq. 3, computed from the cell's weights with separate input and hidden convolutions:
    i = s(W_xi*x + W_hi*h + W_ci.c + b_i), f = s(W_xf*x + W_hf*h + W_cf.c + b_f),
    c' = f.c + i.tanh(W_xc*x + W_hc*h + b_c), o = s(W_xo*x + W_ho*h + W_co.c' + b_o), h' = o.tanh(c')."""
    hc, cin = cell.hidden_channels, cell.in_channels
    w, b = cell.conv.weight, cell.conv.bias
    pad = cell.kernel_size // 2

    def gate(k):  # gate order of the fused weight: i, f, o, g
        rows = slice(k * hc, (k + 1) * hc)
        return (torch.nn.functional.conv2d(x, w[rows, :cin], b[rows], padding=pad)
                + torch.nn.functional.conv2d(h, w[rows, cin:], None, padding=pad))

    w_ci, w_cf, w_co = cell.peephole_weight  # (H, 1, 1) each: per-channel Hadamard weights
    i = torch.sigmoid(gate(0) + w_ci * c)
    f = torch.sigmoid(gate(1) + w_cf * c)
    c_new = f * c + i * torch.tanh(gate(3))
    o = torch.sigmoid(gate(2) + w_co * c_new)
    return o * torch.tanh(c_new), c_new, o


def test_lstm_peephole_follows_shi_2015():
    torch.manual_seed(0)
    cell = ConvLSTMCell(2, 2, 3, peephole=True)
    with torch.no_grad():  # large peepholes, so that a formula using c instead of c' (or no peephole) differs
        scale = torch.tensor([1.5, -2.0, 2.5]).view(3, 1, 1, 1)
        cell.peephole_weight.copy_(scale * torch.linspace(0.5, 1.0, 3).view(1, 3, 1, 1))
    x = torch.randn(4, 1, 2, 6, 7)
    h, c = torch.zeros(1, 3, 6, 7), torch.randn(1, 3, 6, 7)
    state = [h, c]
    for t in range(4):  # a few steps from a non-zero cell state
        h_ref, c_ref, _ = _peephole_reference(cell, x[t], h, c)
        h_new, state = cell(x[t], state)
        torch.testing.assert_close(h_new, h_ref, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(state[1], c_ref, atol=1e-6, rtol=1e-5)
        # the output gate peeks at the new cell state c', not the old one: the two differ here
        w_co = cell.peephole_weight[2]
        _, _, o_ref = _peephole_reference(cell, x[t], h, c)
        o_old = o_ref.logit() - w_co * c_ref + w_co * c
        assert (torch.sigmoid(o_old) * torch.tanh(c_ref) - h_ref).abs().max() > 1e-2
        h, c = h_ref, c_ref
    # the peephole path has no fused inference path; under no_grad it gives the same
    with torch.no_grad():
        torch.testing.assert_close(cell(x[0], [torch.zeros_like(c), c])[0],
                                   _peephole_reference(cell, x[0], torch.zeros_like(c), c)[0], atol=1e-6, rtol=1e-5)
