from __future__ import annotations

import pytest
import torch

from medst.networks import create_network
from medst.networks.nets import ContextVP, PMDUnit


def test_shapes_context_and_range():
    torch.manual_seed(0)
    net = ContextVP(hidden_channels=(4, 4, 6), output_frames=3, patch_size=2)
    x = torch.rand(2, 1, 4, 8, 8)
    y = net(x)
    assert y.shape == (2, 1, 3, 8, 8)
    assert y.min() >= 0.0 and y.max() <= 1.0
    ctx = net(x, return_context=True)
    assert ctx.shape == (2, 1, 4 - 1 + 3, 8, 8)
    torch.testing.assert_close(ctx[:, :, 3:], y)
    ctx.mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def test_predictions_are_causal_and_see_the_whole_past_frame():
    """The prediction of frame t + 1 depends on frames <= t only, and (after two PMD layers) on every pixel of them."""
    torch.manual_seed(0)
    net = ContextVP(hidden_channels=(3, 3), output_frames=1, patch_size=1, kernel_size=3).double().eval()
    x = torch.rand(1, 1, 4, 12, 12, dtype=torch.float64)  # float64: a far pixel's influence is small
    with torch.no_grad():
        ref = net(x, return_context=True)  # predictions of frames 2, 3, 4, 5
        late = x.clone()
        late[:, :, 2:] = torch.rand_like(late[:, :, 2:])  # change frames 3 and 4
        out = net(late, return_context=True)
        assert torch.equal(out[:, :, :2], ref[:, :, :2])  # frames 2 and 3 were predicted from frames 1, 2 only
        assert not torch.allclose(out[:, :, 2:], ref[:, :, 2:])
        corner = x.clone()
        corner[0, 0, 0, 0, 0] += 1.0  # one pixel of frame 1, far beyond a 3x3 kernel's reach of the opposite corner
        far = net(corner, return_context=True)
        assert (far[0, 0, 1, -1, -1] - ref[0, 0, 1, -1, -1]).abs() > 0  # frame 3's opposite corner sees it


def test_directional_weight_sharing_batched_equals_two_sweeps():
    torch.manual_seed(0)
    shared = PMDUnit(2, 3, 4, weight_sharing=True)
    separate = PMDUnit(2, 3, 4, weight_sharing=False)
    state = {k: v for k, v in shared.state_dict().items()}
    separate.load_state_dict(state)  # the shared cell's weights under both directions' names
    assert sum(p.numel() for p in separate.parameters()) > sum(p.numel() for p in shared.parameters())
    x = torch.randn(2, 3, 2, 5, 6)
    y1, s1 = shared(x)
    y2, s2 = separate(x)
    assert y1.shape == (2, 3, 4, 5, 6)
    torch.testing.assert_close(y1, y2)
    torch.testing.assert_close(s1[0], s2[0])


def _pmd(cin: int, h: int, o: int, k: int = 3) -> int:
    time = 4 * h * (cin + h) * k * k + 4 * h  # 2D ConvLSTM over frames
    sweeps = 2 * (4 * h * (cin + h) * k + 4 * h)  # rows, columns (1D ConvLSTMs; opposite directions shared)
    return time + sweeps + 5 * h * o + o  # + the blending 1x1 convolution


def test_contextvp_4_parameter_count():
    """ContextVP-4 as built here (the paper's count could not be checked here): PMD layers 1->64, 64->64, 64->128,
    128->128 (3x3 gates, shared opposite directions), a 1x1 skip projection 64->128 into the third layer's sum, and
    the 1x1 output convolution 128 -> 1."""
    with torch.device("meta"):
        net = create_network("contextvp_4")
    expected = _pmd(1, 64, 64) + _pmd(64, 64, 64) + _pmd(64, 128, 128) + _pmd(128, 128, 128) + 64 * 128 + 128 + 1
    assert expected == 4_399_873
    assert sum(p.numel() for p in net.parameters()) == expected


def test_small_preset_runs_on_64x64():
    net = create_network("contextvp_small", output_frames=2)
    assert net(torch.rand(1, 1, 3, 64, 64)).shape == (1, 1, 2, 64, 64)


def test_errors():
    with pytest.raises(ValueError, match="spatial_dims"):
        ContextVP(spatial_dims=3)
    with pytest.raises(ValueError, match="blend_channels"):
        ContextVP(hidden_channels=(4, 4), blend_channels=(4,))
    with pytest.raises(ValueError, match="hidden_channels"):
        ContextVP(hidden_channels=())
    with pytest.raises(ValueError, match="expected frames"):
        ContextVP(hidden_channels=(4,), patch_size=2)(torch.rand(1, 2, 3, 8, 8))
    with pytest.raises(ValueError, match="divisible"):
        ContextVP(hidden_channels=(4,), patch_size=3)(torch.rand(1, 1, 3, 8, 8))
