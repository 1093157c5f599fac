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
