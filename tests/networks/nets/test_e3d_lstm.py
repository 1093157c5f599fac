from __future__ import annotations

import pytest
import torch

from medst.networks.blocks import E3DLSTMCell, E3DLSTMStack
from medst.networks.nets import E3DLSTM


@pytest.mark.parametrize(
    "kwargs,in_shape,out_shape",
    [
        (dict(in_channels=1, hidden_channels=(4, 4), output_frames=3, patch_size=2, tau=2), (2, 1, 3, 8, 8), (2, 1, 3, 8, 8)),
        (dict(in_channels=2, hidden_channels=(3,), output_frames=1, patch_size=1, window=3, tau=1), (1, 2, 2, 5, 6), (1, 2, 1, 5, 6)),
    ],
)
def test_shape(kwargs, in_shape, out_shape):
    y = E3DLSTM(**kwargs)(torch.rand(in_shape))
    assert y.shape == out_shape and torch.isfinite(y).all()


def test_forecast_is_autoregressive_and_causal():
    torch.manual_seed(0)
    net = E3DLSTM(2, 1, hidden_channels=(4, 4), output_frames=3, patch_size=2, tau=2)
    short = E3DLSTM(2, 1, hidden_channels=(4, 4), output_frames=1, patch_size=2, tau=2)
    short.load_state_dict(net.state_dict())
    x = torch.rand(1, 1, 4, 8, 8)
    # the first forecast does not depend on how many frames are asked for
    torch.testing.assert_close(net(x)[:, :, :1], short(x))
    # feeding the first forecast back as an observed frame gives the same second forecast
    y = net(x)
    longer = torch.cat([x, y[:, :, :1]], 2)
    torch.testing.assert_close(short(longer), y[:, :, 1:2], rtol=1e-4, atol=1e-5)


def test_recall_of_a_constant_memory():
    cell = E3DLSTMCell(2, 3, tau=2)
    v = torch.tensor([0.5, -1.0, 2.0]).view(1, 1, 3, 1, 1, 1)
    c_hist = v.expand(1, 2, 3, 2, 4, 4)
    r = torch.rand(1, 3, 2, 4, 4)
    torch.testing.assert_close(cell.recall(r, c_hist), v[:, 0].expand(1, 3, 2, 4, 4))


def test_memory_history_shifts():
    torch.manual_seed(0)
    cell = E3DLSTMCell(1, 2, tau=3)
    z = torch.zeros(1, 2, 2, 4, 4)
    hist = torch.rand(1, 3, 2, 2, 4, 4)
    h, c, new_hist, m = cell(torch.rand(1, 1, 2, 4, 4), z, z, hist, z)
    torch.testing.assert_close(new_hist[:, :2], hist[:, 1:])
    torch.testing.assert_close(new_hist[:, 2], c)


@pytest.mark.parametrize(
    "kwargs", [dict(spatial_dims=3), dict(output_frames=0), dict(patch_size=0), dict(hidden_channels=(4, 8)), dict(window=0)]
)
def test_invalid(kwargs):
    with pytest.raises(ValueError):
        E3DLSTM(**kwargs)


def test_invalid_cell():
    with pytest.raises(ValueError):
        E3DLSTMCell(1, 2, kernel_size=2)
    with pytest.raises(ValueError):
        E3DLSTMStack(1, [], 2)


def _memory_routes(net, x):
    """Run ``net`` with hooks on its E3D-LSTM layers; return per step the (m in, m out) of every layer."""
    stack = net.rnn.cell
    calls = []
    hooks = [
        cell.register_forward_hook(lambda mod, args, out, l=l: calls.append((l, args[4].detach(), out[3].detach())))
        for l, cell in enumerate(stack.cells)
    ]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for hk in hooks:
            hk.remove()
    n_layers = len(stack.cells)
    assert len(calls) % n_layers == 0 and [c[0] for c in calls[:n_layers]] == list(range(n_layers))
    return [calls[i : i + n_layers] for i in range(0, len(calls), n_layers)]


def _assert_global_memory_flow(steps):
    """Wang et al. 2019 (after PredRNN): M goes up the layers within a step, and from the top layer at step t to the
    bottom layer at step t + 1 (zero at the first step)."""
    for t, layers in enumerate(steps):
        expected = torch.zeros_like(layers[0][1]) if t == 0 else steps[t - 1][-1][2]
        assert torch.equal(layers[0][1], expected), f"step {t}: the bottom layer's M is not the top's of step {t - 1}"
        for l in range(1, len(layers)):
            assert torch.equal(layers[l][1], layers[l - 1][2]), f"step {t}: layer {l}'s M is not layer {l - 1}'s"
        assert all(float(m_out.abs().max()) > 0 for _, _, m_out in layers)  # the memories are not trivially zero


class _PerLayerMemoryStack(E3DLSTMStack):
    """The known upstream mistake: each layer keeps its own M from step to step (no zigzag through the layers)."""

    def init_state(self, x):
        state = super().init_state(x)
        return state + [state[2].clone() for _ in range(self.num_layers - 1)]

    def forward(self, x, state=None):
        if state is None:
            state = self.init_state(x)
        flag = x[:, :1]
        frame = flag * x[:, 1:] + (1.0 - flag) * state[1]
        window = torch.cat([state[0][:, :, 1:], frame.unsqueeze(2)], 2)
        ms = [state[2]] + list(state[3 + 3 * self.num_layers :])
        new_layers, new_ms, inp, k = [], [], window, 3
        for l, cell in enumerate(self.cells):
            h, c, c_hist, m = cell(inp, state[k], state[k + 1], state[k + 2], ms[l])
            new_layers += [h, c, c_hist]
            new_ms.append(m)
            inp, k = h, k + 3
        pred = self.head(inp).squeeze(2)
        return pred, [window, pred, new_ms[0]] + new_layers + new_ms[1:]


@pytest.mark.parametrize("layers", [2, 3])
def test_global_memory_flow_follows_wang_2019(layers):
    torch.manual_seed(0)
    net = E3DLSTM(2, 1, hidden_channels=(4,) * layers, output_frames=3, patch_size=2, tau=2)
    steps = _memory_routes(net, torch.rand(1, 1, 4, 8, 8))
    assert len(steps) == 4 + 3 - 1  # T_in observed steps, then T_out - 1 fed back
    _assert_global_memory_flow(steps)


def test_global_memory_flow_check_fails_on_per_layer_memory():
    torch.manual_seed(0)
    net = E3DLSTM(2, 1, hidden_channels=(4, 4), output_frames=2, patch_size=2, tau=2)
    good = net.rnn.cell
    bad = _PerLayerMemoryStack(4, [4, 4], window=2, tau=2)
    bad.load_state_dict(good.state_dict())
    bad.num_states = good.num_states + 1
    net.rnn.cell = bad
    steps = _memory_routes(net, torch.rand(1, 1, 3, 8, 8))
    with pytest.raises(AssertionError, match="M is not"):
        _assert_global_memory_flow(steps)
