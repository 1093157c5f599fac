from __future__ import annotations

import pytest
import torch

from medst.networks import create_network
from medst.networks.nets import EncoderForecaster

CASES = [
    (dict(spatial_dims=2, in_channels=1, hidden_channels=(4, 4), output_frames=3, patch_size=4), (2, 1, 5, 16, 16), (2, 1, 3, 16, 16)),
    (dict(spatial_dims=2, in_channels=2, out_channels=1, hidden_channels=(4,), output_frames=2, patch_size=1, cell="gru"), (1, 2, 3, 6, 6), (1, 1, 2, 6, 6)),
    (dict(spatial_dims=3, in_channels=1, hidden_channels=(3, 3), output_frames=2, patch_size=2, output_act="sigmoid"), (1, 1, 3, 4, 4, 4), (1, 1, 2, 4, 4, 4)),
]


@pytest.mark.parametrize("kwargs,in_shape,out_shape", CASES)
def test_shape(kwargs, in_shape, out_shape):
    y = EncoderForecaster(**kwargs)(torch.rand(in_shape))
    assert y.shape == out_shape and torch.isfinite(y).all()
    if kwargs.get("output_act") == "sigmoid":
        assert y.min() >= 0 and y.max() <= 1


def test_prediction_depends_on_every_input_frame():
    torch.manual_seed(0)
    net = EncoderForecaster(2, 1, hidden_channels=(4, 4), output_frames=2, patch_size=2)
    x = torch.rand(1, 1, 4, 8, 8, requires_grad=True)
    net(x).sum().backward()
    assert (x.grad.abs().sum(dim=(0, 1, 3, 4)) > 0).all()


def test_encoder_state_continues_the_observation():
    torch.manual_seed(0)
    net = EncoderForecaster(2, 1, hidden_channels=(4, 4), output_frames=2, patch_size=2)
    x = torch.rand(1, 1, 6, 8, 8)
    whole, s_whole = net(x, return_state=True)
    _, s = net(x[:, :, :4], return_state=True)
    cont, s2 = net(x[:, :, 4:], state=s, return_state=True)
    torch.testing.assert_close(cont, whole)
    for a, b in zip(s2, s_whole):
        torch.testing.assert_close(a, b)


def test_moving_mnist_preset():
    with torch.device("meta"):
        net = create_network("convlstm_forecaster")
    assert net.patch_size == 4 and net.output_frames == 10
    assert net.encoder.in_channels == 16  # 4x4 patches of a 1-channel 64x64 frame -> 16x16x16


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(spatial_dims=1),
        dict(output_frames=0),
        dict(patch_size=0),
        dict(hidden_channels=()),
        dict(output_act="relu"),
    ],
)
def test_invalid(kwargs):
    with pytest.raises(ValueError):
        EncoderForecaster(**kwargs)


def test_indivisible_frame_size():
    net = EncoderForecaster(2, 1, hidden_channels=(2,), patch_size=4)
    with pytest.raises(ValueError):
        net(torch.rand(1, 1, 2, 10, 10))
