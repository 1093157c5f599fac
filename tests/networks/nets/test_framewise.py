"""FramewiseClassifier: the single-frame baseline sees frames, not their order."""

from __future__ import annotations

import pytest
import torch

from medst.networks import create_network
from medst.networks.nets import FramewiseClassifier


def test_one_frame_is_the_frame_network_and_order_does_not_matter():
    torch.manual_seed(0)
    net = create_network("framewise_classifier", out_channels=4, frame_kwargs=dict(channels=(4, 8), dilations=(1, 2),
                                                                                   dropout=0.0)).eval()
    x = torch.rand(2, 1, 5, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(net(x[:, :, 2:3]), net.frame_net(x[:, :, 2]))
        torch.testing.assert_close(net(x), net(x.flip(2)), atol=1e-6, rtol=1e-5)  # time reversed: the same answer
        torch.testing.assert_close(net(x), torch.stack([net.frame_net(x[:, :, t]) for t in range(5)]).mean(0),
                                   atol=1e-6, rtol=1e-5)


def test_4d_scan_frames_are_volumes():
    net = FramewiseClassifier(4, 1, 3, frame_kwargs=dict(channels=(4,), dilations=(1,)))
    assert net(torch.rand(1, 1, 2, 8, 8, 8)).shape == (1, 3)


def test_errors():
    with pytest.raises(ValueError, match="3 \\(video\\) or 4"):
        FramewiseClassifier(2, 1, 3)
    net = FramewiseClassifier(3, 1, 3, frame_kwargs=dict(channels=(4,), dilations=(1,)))
    with pytest.raises(ValueError, match="expected \\(B, C, T, \\*frame\\)"):
        net(torch.rand(1, 1, 8, 8))
