from __future__ import annotations

import pytest
import torch

from medst.networks import create_network
from medst.networks.nets import MotionForecaster


@pytest.mark.parametrize("motion", ["cdna", "flow"])
def test_shapes_context_and_range(motion):
    torch.manual_seed(0)
    net = MotionForecaster(hidden_channels=(6, 6), output_frames=3, patch_size=2, motion=motion, num_kernels=2)
    for p in net.parameters():  # leave the zero initialisation, so that every part contributes
        torch.nn.init.normal_(p, std=0.3)
    x = torch.rand(2, 1, 4, 16, 16)
    y = net(x)
    assert y.shape == (2, 1, 3, 16, 16)
    ctx = net(x, return_context=True)
    assert ctx.shape == (2, 1, 4 - 1 + 3, 16, 16)
    torch.testing.assert_close(ctx[:, :, 3:], y)  # the context predictions are extra outputs, not a change
    assert y.min() >= 0.0 and y.max() <= 1.0  # a convex mix of input pixels and a sigmoid frame
    ctx.mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def _shift_right(frame, n):
    out = torch.zeros_like(frame)
    out[..., n:] = frame[..., :-n]
    return out


def test_cdna_kernel_moves_the_frame():
    """A one-hot kernel one pixel left of centre, chosen by the masks, moves the content right by a pixel per step."""
    k = 5
    net = MotionForecaster(hidden_channels=(4,), output_frames=3, patch_size=2, num_kernels=2, motion_kernel_size=k)
    with torch.no_grad():
        net.kernel_linear.bias.fill_(-30.0)
        net.kernel_linear.bias.view(2, k, k)[1, k // 2, k // 2 - 1] = 30.0  # kernel 2: in(x - 1) -> out(x)
        net.head.bias.view(-1, 4).fill_(-30.0)
        net.head.bias.view(-1, 4)[2] = 30.0  # masks: [generated, kernel 1, kernel 2] -> kernel 2 everywhere
    x = torch.zeros(1, 1, 2, 12, 12)
    x[0, 0, :, 4:7, 3:5] = torch.tensor([0.2, 0.9, 0.5]).view(3, 1)
    y = net(x)
    for t in range(3):
        torch.testing.assert_close(y[0, 0, t], _shift_right(x[0, 0, -1], t + 1), atol=1e-5, rtol=0)


def test_flow_warp_moves_the_frame():
    net = MotionForecaster(hidden_channels=(4,), output_frames=2, patch_size=2, motion="flow")
    with torch.no_grad():
        bias = net.head.bias.view(-1, 4)
        bias.zero_()
        bias[0] = -1.0  # dx: out(x) = in(x - 1), a move one pixel right
        bias[2] = 30.0  # all warped, nothing generated
    x = torch.zeros(1, 1, 2, 12, 12)
    x[0, 0, :, 4:7, 3:5] = 0.7
    y = net(x)
    for t in range(2):
        torch.testing.assert_close(y[0, 0, t], _shift_right(x[0, 0, -1], t + 1), atol=1e-5, rtol=0)


def test_zero_initialisation_starts_from_moving_not_generating():
    net = MotionForecaster(hidden_channels=(4,), output_frames=1, patch_size=2)
    x = torch.zeros(1, 1, 3, 16, 16)
    x[..., 6:10, 6:10] = 1.0
    with torch.no_grad():
        y = net(x)[0, 0, 0]
    # an untrained network moves the pixels it saw (kernels that keep their sum) rather than painting new ones:
    # the square's mass (16) stays, and stays where the square was
    assert 0.9 * 16 <= float(y.sum()) <= 1.1 * 16
    near = y[2:14, 2:14].sum() / y.sum()  # the square and a margin of the motion kernel's reach
    assert float(near) > 0.9
    assert y[8, 8] > 10 * y[0, 0]


def test_prediction_bundle_network_has_the_readme_size():
    """The README: MotionForecaster (1.32M parameters) as the prediction bundle's train config builds it."""
    from pathlib import Path

    from monai.bundle import ConfigParser

    cfg = Path(__file__).resolve().parents[3] / "bundles/moving_digits_convlstm_prediction/configs/train.json"
    parser = ConfigParser()
    parser.read_config(str(cfg))
    net = parser.get_parsed_content("network_def")
    assert isinstance(net, MotionForecaster)
    assert round(sum(p.numel() for p in net.parameters()) / 1e6, 2) == 1.32


def test_moving_mnist_preset_and_size():
    net = create_network("cdna_forecaster")
    assert net.patch_size == 4 and net.output_frames == 10 and net.num_kernels == 4
    assert net(torch.rand(1, 1, 10, 64, 64)).shape == (1, 1, 10, 64, 64)
    assert sum(p.numel() for p in net.parameters()) * 4 < 5e6  # float32 weights under 5 MB
    assert create_network("flow_forecaster", output_frames=2)(torch.rand(1, 1, 3, 32, 32)).shape == (1, 1, 2, 32, 32)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(spatial_dims=3),
        dict(in_channels=0),
        dict(hidden_channels=()),
        dict(output_frames=0),
        dict(patch_size=0),
        dict(motion="affine"),
        dict(num_kernels=0),
        dict(motion_kernel_size=4),
    ],
)
def test_invalid(kwargs):
    with pytest.raises(ValueError):
        MotionForecaster(**kwargs)


def test_bad_input():
    net = MotionForecaster(hidden_channels=(2,), patch_size=4)
    with pytest.raises(ValueError, match="2D frames"):
        net(torch.rand(1, 1, 4, 8, 8, 8))
    with pytest.raises(ValueError):
        net(torch.rand(1, 2, 4, 8, 8))  # wrong channel count
    with pytest.raises(ValueError, match="divisible"):
        net(torch.rand(1, 1, 4, 10, 10))
