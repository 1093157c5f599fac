from __future__ import annotations

import pytest
import torch
from monai.networks.nets import UNETR

from medst.networks import create_network


def _count(net):
    return sum(p.numel() for p in net.parameters())


def test_paper_size_parameter_count():
    # MONAI's UNETR at the paper's sizes (feature 16, hidden 768, MLP 3072, 12 heads, 96^3, 1 -> 14 channels as
    # BTCV): 92.6M parameters (the paper reports 92.58M)
    with torch.device("meta"):
        net = create_network("unetr_paper", in_channels=1, out_channels=14)
    assert isinstance(net, UNETR)
    assert _count(net) == pytest.approx(92.6e6, rel=0.005)


@pytest.mark.parametrize("name", ["unetr_small", "unetr_medium"])
def test_presets_grow(name):
    with torch.device("meta"):
        small = _count(create_network(name))
        paper = _count(create_network("unetr_paper"))
    assert small < paper


def test_video_as_volume():
    # a video (B, C, T, H, W) is three axes like any volume
    net = create_network("unetr_small", in_channels=3, out_channels=2, img_size=(16, 32, 32))
    assert net(torch.randn(1, 3, 16, 32, 32)).shape == (1, 2, 16, 32, 32)
