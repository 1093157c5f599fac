from __future__ import annotations

import pytest
import torch

from medst.networks import create_network
from medst.networks.nets import C3D, VideoResNet, VideoSegNet
from medst.networks.nets.video_resnet import conv_builder, r2plus1d_midplanes


def _count(name, **kwargs):
    with torch.device("meta"):
        net = create_network(name, **kwargs)
    return sum(p.numel() for p in net.parameters())


# torchvision's video ResNets (400 Kinetics classes): r3d_18 33,371,472; mc3_18 11,695,440; r2plus1d_18 31,505,325
@pytest.mark.parametrize("name,count", [("r3d_18", 33_371_472), ("mc3_18", 11_695_440), ("r2plus1d_18", 31_505_325)])
def test_published_parameter_counts(name, count):
    assert _count(name, out_channels=400) == count


def test_c3d_parameter_count():
    # Tran 2015 layer list: convs 64,128,256,256,512,512,512,512 (3^3), fc6 8192->4096, fc7 4096->4096, fc8 -> K
    convs = [(3, 64), (64, 128), (128, 256), (256, 256), (256, 512), (512, 512), (512, 512), (512, 512)]
    n_conv = sum(i * o * 27 + o for i, o in convs)
    n_fc = 8192 * 4096 + 4096 + 4096 * 4096 + 4096
    assert _count("c3d", out_channels=487) == n_conv + n_fc + 4096 * 487 + 487  # 79.99M (Sports-1M, 487 classes)
    assert _count("c3d", out_channels=101) == pytest.approx(78.4e6, rel=1e-3)  # 78.4M for UCF101's 101 classes


def test_csn_parameter_counts():
    # Tran 2019 reports 29.6M (ir-CSN-152) and 32.8M (ip-CSN-152) parameters; the conv and fc weights here
    # (BatchNorm's affine parameters left out) give 29.55M and 32.84M.
    for name, ref in [("ir_csn_152", 29.6e6), ("ip_csn_152", 32.8e6)]:
        with torch.device("meta"):
            net = create_network(name, out_channels=400)
        n = sum(p.numel() for m in net.modules() if isinstance(m, (torch.nn.Conv3d, torch.nn.Linear)) for p in m.parameters())
        assert n == pytest.approx(ref, rel=0.005)


def test_midplanes_formula():
    # torchvision's R(2+1)D-18 mid-planes (its Conv2Plus1D layers' first conv widths, from its published weights):
    # 64->64: 144, 64->128: 230, 128->128: 288, 128->256: 460, 256->256: 576, 256->512: 921, 512->512: 1152
    pairs = [(64, 64, 144), (64, 128, 230), (128, 128, 288), (128, 256, 460), (256, 256, 576), (256, 512, 921),
             (512, 512, 1152)]
    assert [r2plus1d_midplanes(i, o) for i, o, _ in pairs] == [m for _, _, m in pairs]
    # a (2+1)D conv has about the parameters of the 3x3x3 conv it replaces
    conv = conv_builder("2plus1d", 128, 128, r2plus1d_midplanes(128, 128), 1)
    n = sum(p.numel() for m in conv.modules() if isinstance(m, torch.nn.Conv3d) for p in m.parameters())
    assert n == pytest.approx(128 * 128 * 27, rel=0.01)


@pytest.mark.parametrize(
    "kwargs,in_shape,out_shape",
    [
        (dict(out_channels=7, widths=(8, 8, 16, 16)), (2, 3, 8, 32, 32), (2, 7)),
        (dict(out_channels=3, conv_kinds=("3d", "2d", "2d", "2d"), widths=(8, 8, 8, 8)), (1, 3, 4, 16, 16), (1, 3)),
        (dict(block="bottleneck", layers=(1, 1, 1, 1), conv_kinds=("ip",) * 4, stem="pool", widths=(4, 4, 8, 8)), (1, 3, 4, 32, 32), (1, 400)),
    ],
)
def test_classifier_shapes(kwargs, in_shape, out_shape):
    net = VideoResNet(**kwargs).eval()  # eval: BatchNorm on a 1x1x1 map of one clip
    with torch.no_grad():
        assert net(torch.randn(in_shape)).shape == out_shape


def test_features_only_scales():
    net = VideoResNet(conv_kinds=("3d", "2d", "2d", "2d"), widths=(8, 8, 16, 16), features_only=True)
    feats = net(torch.randn(1, 3, 8, 32, 32))
    assert [f.shape[1] for f in feats] == net.feature_channels == [64, 8, 8, 16, 16]
    # MC3: the 2D stages keep T; H, W halve from stage 2 on
    assert [tuple(f.shape[2:]) for f in feats] == [(8, 16, 16), (8, 16, 16), (8, 8, 8), (8, 4, 4), (8, 2, 2)]
    r3d = VideoResNet(widths=(8, 8, 16, 16), features_only=True)
    assert tuple(r3d(torch.randn(1, 3, 8, 32, 32))[-1].shape[2:]) == (1, 2, 2)


def test_c3d_paper_clip_and_features():
    net = C3D(out_channels=4, fc_channels=16).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 16, 112, 112)).shape == (1, 4)
        assert net.pool5(net.forward_features(torch.randn(1, 3, 16, 112, 112))[-1]).shape == (1, 512, 1, 4, 4)


@pytest.mark.parametrize("encoder", ["r3d_18", "mc3_18", "ir_csn_50", "c3d"])
def test_videosegnet(encoder):
    kw = dict(fc_channels=8) if encoder == "c3d" else dict(widths=(4, 4, 8, 8))
    net = VideoSegNet(3, in_channels=2, out_channels=3, encoder=encoder, encoder_kwargs=kw).eval()
    t = 16 if encoder == "c3d" else 4  # C3D pools time 4 times
    with torch.no_grad():
        assert net(torch.randn(1, 2, t, 16, 16)).shape == (1, 3, t, 16, 16)


@pytest.mark.parametrize(
    "cls,kwargs",
    [
        (VideoResNet, dict(spatial_dims=2)),
        (VideoResNet, dict(block="dense")),
        (VideoResNet, dict(layers=(2, 2), conv_kinds=("3d",) * 4)),
        (VideoResNet, dict(conv_kinds=("4d",) * 4)),
        (VideoResNet, dict(stem="big")),
        (C3D, dict(spatial_dims=2)),
        (VideoSegNet, dict(spatial_dims=2)),
        (VideoSegNet, dict(encoder=torch.nn.Identity())),
        (VideoSegNet, dict(encoder_kwargs=dict(widths=(4, 4, 8, 8)), decoder_channels=(8,))),
    ],
)
def test_invalid(cls, kwargs):
    with pytest.raises(ValueError):
        cls(**kwargs)
