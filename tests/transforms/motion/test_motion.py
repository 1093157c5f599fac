"""OpticalFlow / StackFlow and their dictionary versions: the flow of a known translation, the stacking layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from scipy.ndimage import binary_dilation, gaussian_filter

from medst.data.utils import MedstDataError
from medst.transforms import OpticalFlow, OpticalFlowd, StackFlow, StackFlowd



def _moving_square(dx: int, dy: int, t: int = 6, size: int = 64, side: int = 20, seed: int = 0):
    """A textured square moving (dx, dy) pixels per frame on black: video (1, T, H, W) in 0..1 and its masks."""
    rng = np.random.default_rng(seed)
    tex = gaussian_filter(rng.random((side, side)), 1.0)
    tex = 0.2 + 0.8 * (tex - tex.min()) / (tex.max() - tex.min())
    video = np.zeros((1, t, size, size), np.float32)
    masks = np.zeros((t, size, size), bool)
    for i in range(t):
        y0, x0 = 16 + dy * i, 12 + dx * i
        video[0, i, y0 : y0 + side, x0 : x0 + side] = tex
        masks[i, y0 : y0 + side, x0 : x0 + side] = True
    return video, masks


@pytest.mark.parametrize("dx,dy", [(2, 1), (-1, 3), (0, 0)])
def test_flow_of_a_translating_square(dx, dy):
    video, masks = _moving_square(dx, dy)
    flow = OpticalFlow()(torch.from_numpy(video))
    assert flow.shape == (2, 5, 64, 64) and flow.dtype == torch.float32
    for t in range(5):
        m = masks[t]
        assert flow[0, t][m].mean().item() == pytest.approx(dx, abs=0.1)  # x: along W
        assert flow[1, t][m].mean().item() == pytest.approx(dy, abs=0.1)  # y: along H
        far = ~binary_dilation(masks[t] | masks[t + 1], iterations=12)  # background well away from the square
        assert flow[:, t][:, far].abs().mean().item() < 0.05


def test_uint8_rgb_same_length_bound_and_meta():
    video, masks = _moving_square(3, 0)
    rgb = torch.from_numpy((video * 255).round().astype(np.uint8)).repeat(3, 1, 1, 1)  # grey as RGB
    img = MetaTensor(rgb, meta={"fps": 25.0, "filename_or_obj": "clip.mp4"})
    flow = OpticalFlow(same_length=True, bound=2.0)(img)
    assert flow.shape == (2, 6, 64, 64)
    assert isinstance(flow, MetaTensor) and flow.meta["fps"] == 25.0
    assert flow.abs().max().item() <= 2.0
    assert torch.all(flow[:, -1] == 0)  # the appended step
    assert flow[0, 0][torch.from_numpy(masks[0])].mean().item() == pytest.approx(2.0, abs=0.05)  # 3 clipped to 2


def test_flow_errors():
    with pytest.raises(MedstDataError, match="at least 2 frames"):
        OpticalFlow()(torch.zeros(1, 1, 8, 8))
    with pytest.raises(MedstDataError, match="4D series"):
        OpticalFlow()(torch.zeros(1, 3, 8, 8, 8))
    with pytest.raises(ValueError, match="pyr_scale"):
        OpticalFlow(pyr_scale=1.5)
    with pytest.raises(ValueError, match="poly_n"):
        OpticalFlow(poly_n=3)


def test_stack_flow_layout():
    t, n = 6, 2
    frames = torch.arange(t, dtype=torch.float32).view(1, t, 1, 1).expand(1, t, 3, 4).clone()
    flow = torch.zeros(2, t - 1, 3, 4)
    for i in range(t - 1):
        flow[0, i], flow[1, i] = 10 + i, -(10 + i)  # x_i = 10 + i, y_i = -(10 + i)
    out = StackFlow(n)(frames, flow)
    assert out.shape == (1 + 2 * n, t - n, 3, 4)
    for s in range(t - n):
        # [frame_s, x_s, y_s, x_{s+1}, y_{s+1}]
        assert out[:, s, 0, 0].tolist() == [s, 10 + s, -(10 + s), 11 + s, -(11 + s)]


def test_stack_flow_errors():
    with pytest.raises(ValueError, match="num_flows"):
        StackFlow(0)
    with pytest.raises(MedstDataError, match="same H, W"):
        StackFlow(1)(torch.zeros(1, 4, 8, 8), torch.zeros(2, 3, 8, 9))
    with pytest.raises(MedstDataError, match="num_flows=4"):
        StackFlow(4)(torch.zeros(1, 4, 8, 8), torch.zeros(2, 3, 8, 8))


def test_dictionary_pipeline_feeds_two_stream():
    from medst.networks import create_network

    video, _ = _moving_square(1, 1, t=5, size=32, side=12)
    d = {"image": torch.from_numpy(video)}
    d = OpticalFlowd("image")(d)
    assert d["image_flow"].shape == (2, 4, 32, 32)
    d = StackFlowd("image", num_flows=2)(d)
    assert d["image"].shape == (5, 3, 32, 32)
    net = create_network("two_stream_fusion_small", in_channels=1, flow_channels=4, out_channels=3).eval()
    with torch.no_grad():
        assert net(d["image"][None]).shape == (1, 3)
    with pytest.raises(KeyError, match="OpticalFlowd"):
        StackFlowd("image", flow_keys="nope")({"image": d["image"]})
