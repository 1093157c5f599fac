from __future__ import annotations

import pytest
import torch

from medst.networks.nets import PredNet


def _net(**kwargs):
    torch.manual_seed(0)
    return PredNet(2, 1, channels=(4, 8), **kwargs)


def test_prediction_t_sees_only_earlier_frames():
    net = _net().eval()
    x = torch.rand(1, 1, 5, 16, 16)
    x2 = x.clone()
    x2[:, :, 2] += 0.5
    with torch.no_grad():
        y, y2 = net(x), net(x2)
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    assert torch.equal(y[:, :, :3], y2[:, :, :3])  # predictions of frames 0..2 come from frames 0..1
    assert not torch.allclose(y[:, :, 3], y2[:, :, 3])


def test_two_chunks_with_state_equal_whole():
    net = _net().eval()
    assert net.supports_streaming
    x = torch.rand(1, 1, 6, 8, 8)
    whole = net(x)
    a, s = net(x[:, :, :4], return_state=True)
    torch.testing.assert_close(torch.cat([a, net(x[:, :, 4:], state=s)], 2), whole)


def test_extrapolation_feeds_its_predictions_back():
    net = _net(output_frames=3).eval()
    assert not net.supports_streaming
    x = torch.rand(2, 1, 4, 8, 8)
    y = net(x)
    assert y.shape == (2, 1, 3, 8, 8)
    # the first extrapolated frame is the prediction that follows the observed frames
    nxt = _net().eval()(torch.cat([x, torch.zeros_like(x[:, :, :1])], 2))[:, :, -1]
    torch.testing.assert_close(y[:, :, 0], nxt)


def test_learns_a_moving_bar():
    torch.manual_seed(0)
    x = torch.zeros(4, 1, 6, 16, 16)
    for t in range(6):
        x[:, :, t, :, 2 * t : 2 * t + 3] = 1.0
    net = _net()
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    losses = []
    for _ in range(40):
        loss = ((net(x)[:, :, 1:] - x[:, :, 1:]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_bad_input():
    with pytest.raises(ValueError, match="divisible by 4"):
        _net()(torch.rand(1, 1, 2, 10, 8))
    with pytest.raises(ValueError, match="expected input"):
        _net()(torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="one entry per layer"):
        PredNet(2, 1, channels=(4, 8), r_channels=(4, 8))
    with pytest.raises(ValueError, match="output_frames"):
        PredNet(2, 1, output_frames=-1)


def test_volumes_of_a_4d_scan():
    net = PredNet(3, 1, channels=(2,)).eval()
    x = torch.rand(1, 1, 3, 4, 6, 8)
    with torch.no_grad():
        assert net(x).shape == x.shape
