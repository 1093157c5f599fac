"""3D-convolution video networks: C3D, and one generic VideoResNet for R3D, MC, R(2+1)D, ip-CSN and ir-CSN.

A video is a (B, C, T, H, W) volume. Each family is a classifier (logits (B, K)) and an encoder: with
``features_only=True`` (or through ``forward_features``) it returns its multi-scale feature maps, which
:class:`VideoSegNet` decodes into per-voxel logits.

VideoResNet takes a *conv builder* per stage: the builder answers two questions (build the 3x3x3-like conv of a
block; the stride of the matching shortcut), so the shared stage code never branches on a variant's name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from medst.networks.registry import register_network

__all__ = [
    "C3D",
    "VideoResNet",
    "VideoSegNet",
    "conv_builder",
    "r2plus1d_midplanes",
    "c3d",
    "r3d_18",
    "mc3_18",
    "r2plus1d_18",
    "r2plus1d_34",
    "ir_csn_152",
    "ip_csn_152",
    "ir_csn_50",
    "r3d_18_seg",
    "r2plus1d_18_seg",
]


def r2plus1d_midplanes(in_planes: int, out_planes: int, t: int = 3, d: int = 3) -> int:
    """Mid-plane channels of a (2+1)D conv matching a t x d x d conv's parameters (Tran 2018, Sec. 3.5):
    ``M = floor(t * d^2 * N_in * N_out / (d^2 * N_in + t * N_out))``."""
    return (t * d * d * in_planes * out_planes) // (d * d * in_planes + t * out_planes)


class _Conv2Plus1D(nn.Sequential):
    """(2+1)D conv: a 1 x 3 x 3 spatial conv to ``mid`` channels, BN, ReLU, then a 3 x 1 x 1 temporal conv."""

    def __init__(self, in_planes: int, out_planes: int, mid: int, stride: int) -> None:
        super().__init__(
            nn.Conv3d(in_planes, mid, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, out_planes, (3, 1, 1), stride=(stride, 1, 1), padding=(1, 0, 0), bias=False),
        )


def conv_builder(kind: str, in_planes: int, out_planes: int, mid: int, stride: int) -> nn.Module:
    """The main conv of a residual block, by kind.

    - ``"3d"``: 3 x 3 x 3 (R3D; Tran 2018, https://arxiv.org/abs/1711.11248);
    - ``"2d"``: 1 x 3 x 3, no temporal extent (the 2D stages of MC networks);
    - ``"2plus1d"``: (2+1)D with ``mid`` channels (R(2+1)D);
    - ``"ir"``: 3 x 3 x 3 depthwise (ir-CSN; Tran 2019, https://arxiv.org/abs/1904.02811);
    - ``"ip"``: 1 x 1 x 1 conv, BN, 3 x 3 x 3 depthwise (ip-CSN).
    """
    if kind == "3d":
        return nn.Conv3d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
    if kind == "2d":
        return nn.Conv3d(in_planes, out_planes, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False)
    if kind == "2plus1d":
        return _Conv2Plus1D(in_planes, out_planes, mid, stride)
    if kind in ("ir", "ip"):
        if in_planes != out_planes:
            raise ValueError(f"a depthwise (CSN) conv keeps its channels, got {in_planes} -> {out_planes}.")
        dw = nn.Conv3d(in_planes, out_planes, 3, stride=stride, padding=1, groups=in_planes, bias=False)
        if kind == "ir":
            return dw
        return nn.Sequential(nn.Conv3d(in_planes, out_planes, 1, bias=False), nn.BatchNorm3d(out_planes), dw)
    raise ValueError(f"conv kind must be one of '3d', '2d', '2plus1d', 'ir', 'ip', got {kind!r}.")


def _shortcut_stride(kind: str, stride: int) -> tuple[int, int, int]:
    return (1, stride, stride) if kind == "2d" else (stride, stride, stride)


class _BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, kind: str, in_planes: int, planes: int, stride: int, midplanes: str = "shared") -> None:
        super().__init__()
        mid = r2plus1d_midplanes(in_planes, planes)
        # "shared": conv2 reuses conv1's mid-planes (torchvision); "per_conv": its own (Caffe2 / VMZ, the paper's rule)
        mid2 = mid if midplanes == "shared" else r2plus1d_midplanes(planes, planes)
        self.conv1 = nn.Sequential(conv_builder(kind, in_planes, planes, mid, stride), nn.BatchNorm3d(planes), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(conv_builder(kind, planes, planes, mid2, 1), nn.BatchNorm3d(planes))
        self.shortcut = _make_shortcut(kind, in_planes, planes, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, kind: str, in_planes: int, planes: int, stride: int, midplanes: str = "shared") -> None:
        super().__init__()
        mid = r2plus1d_midplanes(in_planes, planes)
        out = planes * 4
        self.conv1 = nn.Sequential(nn.Conv3d(in_planes, planes, 1, bias=False), nn.BatchNorm3d(planes), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(conv_builder(kind, planes, planes, mid, stride), nn.BatchNorm3d(planes), nn.ReLU(inplace=True))
        self.conv3 = nn.Sequential(nn.Conv3d(planes, out, 1, bias=False), nn.BatchNorm3d(out))
        self.shortcut = _make_shortcut(kind, in_planes, out, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv3(self.conv2(self.conv1(x))) + self.shortcut(x))


def _make_shortcut(kind: str, in_planes: int, out_planes: int, stride: int) -> nn.Module:
    if stride == 1 and in_planes == out_planes:
        return nn.Identity()
    return nn.Sequential(
        nn.Conv3d(in_planes, out_planes, 1, stride=_shortcut_stride(kind, stride), bias=False), nn.BatchNorm3d(out_planes)
    )


def _stem(kind: str, in_channels: int) -> nn.Sequential:
    if kind == "basic":  # R3D / MC: 3 x 7 x 7, stride (1, 2, 2)
        return nn.Sequential(
            nn.Conv3d(in_channels, 64, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
            nn.BatchNorm3d(64),
            nn.ReLU(inplace=True),
        )
    if kind == "r2plus1d":  # (2+1)D stem with 45 mid channels
        return nn.Sequential(
            nn.Conv3d(in_channels, 45, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
            nn.BatchNorm3d(45),
            nn.ReLU(inplace=True),
            nn.Conv3d(45, 64, (3, 1, 1), padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(64),
            nn.ReLU(inplace=True),
        )
    if kind == "pool":  # CSN: the basic stem and a 1 x 3 x 3 max pool
        return nn.Sequential(
            nn.Conv3d(in_channels, 64, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
            nn.BatchNorm3d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        )
    raise ValueError(f"stem must be 'basic', 'r2plus1d' or 'pool', got {kind!r}.")


class VideoResNet(nn.Module):
    """Generic 3D-convolution residual network for video: R3D, MC, R(2+1)D (Tran et al. 2018, "A Closer Look at
    Spatiotemporal Convolutions for Action Recognition", https://arxiv.org/abs/1711.11248) and the
    channel-separated ip-CSN / ir-CSN (Tran et al. 2019, "Video Classification with Channel-Separated Convolutional
    Networks", https://arxiv.org/abs/1904.02811), written as one network whose stages take a conv kind each.

    Args:
        spatial_dims: must be 3: the video (T, H, W) is one volume.
        in_channels: input channels (3 for RGB).
        out_channels: classes (400 for Kinetics).
        block: ``"basic"`` (two convs; ResNet-18/34) or ``"bottleneck"`` (1-conv-1, x4 expansion; ResNet-50/101/152).
        layers: blocks per stage, e.g. (2, 2, 2, 2) for 18 layers, (3, 8, 36, 3) for 152.
        conv_kinds: one conv kind per stage (see :func:`conv_builder`): R3D ``("3d",) * 4``; MC3 ``("3d", "2d", "2d",
            "2d")``; R(2+1)D ``("2plus1d",) * 4``; ir-CSN ``("ir",) * 4``; ip-CSN ``("ip",) * 4``.
        stem: ``"basic"``, ``"r2plus1d"`` or ``"pool"`` (CSN).
        widths: planes per stage.
        dropout: dropout before the classifier.
        features_only: forward returns the list of feature maps (stem, stage 1..4) instead of logits, for use as
            the encoder of a segmentation network.
        midplanes: mid-plane rule of a basic block's two (2+1)D convs: ``"shared"`` (both use
            ``M(in, out)``, as torchvision's R(2+1)D-18 and its Kinetics weights) or ``"per_conv"`` (the second conv
            uses ``M(out, out)``, as the paper's Caffe2 models and the VMZ / IG-65M R(2+1)D-34 weights). The two
            differ only in the first block of stages 2-4.

    Shapes: (B, C, T, H, W) -> logits (B, K); features: (B, c_i, T_i, H_i, W_i), ``feature_channels`` lists c_i.
    Stage 1 keeps the stem's resolution; stages 2-4 halve T (except MC's 2D stages), H and W.

    Example::

        net = create_network("r2plus1d_18", out_channels=400)
        logits = net(torch.rand(1, 3, 16, 112, 112))   # (1, 400)
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 3,
        out_channels: int = 400,
        block: str = "basic",
        layers: Sequence[int] = (2, 2, 2, 2),
        conv_kinds: Sequence[str] = ("3d", "3d", "3d", "3d"),
        stem: str = "basic",
        widths: Sequence[int] = (64, 128, 256, 512),
        dropout: float = 0.0,
        features_only: bool = False,
        midplanes: str = "shared",
    ) -> None:
        super().__init__()
        if midplanes not in ("shared", "per_conv"):
            raise ValueError(f"midplanes must be 'shared' (torchvision) or 'per_conv' (Caffe2 / VMZ), got {midplanes!r}.")
        if spatial_dims != 3:
            raise ValueError(f"video networks see a video (T, H, W) as a volume: spatial_dims must be 3, got {spatial_dims}.")
        if block not in ("basic", "bottleneck"):
            raise ValueError(f"block must be 'basic' or 'bottleneck', got {block!r}.")
        if not (len(layers) == len(conv_kinds) == len(widths)) or len(layers) < 1:
            raise ValueError(
                f"layers ({len(layers)}), conv_kinds ({len(conv_kinds)}) and widths ({len(widths)}) need one entry per stage."
            )
        block_cls: Any = _BasicBlock if block == "basic" else _Bottleneck
        self.stem = _stem(stem, in_channels)
        stages = []
        c = 64
        feature_channels = [64]
        for i, (n, kind, w) in enumerate(zip(layers, conv_kinds, widths)):
            blocks = []
            for j in range(n):
                blocks.append(block_cls(kind, c, w, 2 if (i > 0 and j == 0) else 1, midplanes))
                c = w * block_cls.expansion
            stages.append(nn.Sequential(*blocks))
            feature_channels.append(c)
        self.stages = nn.ModuleList(stages)
        self.feature_channels = feature_channels
        self.features_only = features_only
        self.num_features = c
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c, out_channels)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, C, T, H, W) -> [stem, stage 1, ..., stage 4] feature maps."""
        feats = [self.stem(x)]
        for stage in self.stages:
            feats.append(stage(feats[-1]))
        return feats

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, list[torch.Tensor]]:  # noqa: UP007
        feats = self.forward_features(x)
        if self.features_only:
            return feats
        return self.fc(self.dropout(self.pool(feats[-1]).flatten(1)))


class C3D(nn.Module):
    """C3D of Tran et al. 2015, "Learning Spatiotemporal Features with 3D Convolutional Networks",
    https://arxiv.org/abs/1412.0767: eight 3 x 3 x 3 convs (64, 128, 256x2, 512x2, 512x2), five max pools (the first
    1 x 2 x 2), two 4096-unit fully connected layers and the classifier (487 classes for Sports-1M).

    For the paper's 16 x 112 x 112 clips, the last pool pads H and W by one (as the released model does) so that
    pool5 gives 512 x 1 x 4 x 4 = 8192 features for fc6. Other clip sizes work: an adaptive average pool brings
    pool5 to ``fc_input_size`` (1, 4, 4) first (a no-op at the paper's size).

    Args:
        spatial_dims: must be 3.
        in_channels: input channels (3 for RGB).
        out_channels: classes.
        fc_channels: units of fc6 and fc7 (4096 in the paper).
        dropout: dropout after fc6 and fc7 (0.5 in the paper).
        features_only: forward returns the conv features after conv1, conv2, conv3b, conv4b, conv5b.

    Shapes: (B, C, T, H, W) -> logits (B, K); the four 2 x 2 x 2 pools need T >= 16 (and H, W >= 32).
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 3,
        out_channels: int = 487,
        fc_channels: int = 4096,
        dropout: float = 0.5,
        features_only: bool = False,
    ) -> None:
        super().__init__()
        if spatial_dims != 3:
            raise ValueError(f"C3D sees a video (T, H, W) as a volume: spatial_dims must be 3, got {spatial_dims}.")

        def conv(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv3d(i, o, 3, padding=1), nn.ReLU(inplace=True))

        self.block1 = conv(in_channels, 64)
        self.block2 = nn.Sequential(nn.MaxPool3d((1, 2, 2), (1, 2, 2)), conv(64, 128))
        self.block3 = nn.Sequential(nn.MaxPool3d(2, 2), conv(128, 256), conv(256, 256))
        self.block4 = nn.Sequential(nn.MaxPool3d(2, 2), conv(256, 512), conv(512, 512))
        self.block5 = nn.Sequential(nn.MaxPool3d(2, 2), conv(512, 512), conv(512, 512))
        self.pool5 = nn.MaxPool3d(2, 2, padding=(0, 1, 1))
        self.fit = nn.AdaptiveAvgPool3d((1, 4, 4))
        self.fc = nn.Sequential(
            nn.Linear(8192, fc_channels),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(fc_channels, fc_channels),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(fc_channels, out_channels),
        )
        self.features_only = features_only
        self.feature_channels = [64, 128, 256, 512, 512]

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        f1 = self.block1(x)
        f2 = self.block2(f1)
        f3 = self.block3(f2)
        f4 = self.block4(f3)
        f5 = self.block5(f4)
        return [f1, f2, f3, f4, f5]

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, list[torch.Tensor]]:  # noqa: UP007
        feats = self.forward_features(x)
        if self.features_only:
            return feats
        return self.fc(self.fit(self.pool5(feats[-1])).flatten(1))


class VideoSegNet(nn.Module):
    """Segmentation network over a video encoder's multi-scale features (a small U-Net-style decoder).

    The encoder is any module with ``forward_features(x) -> list of (B, c_i, *S_i)`` and ``feature_channels``
    (VideoResNet, C3D). Each decoder step upsamples (trilinear) to the next finer feature's size, concatenates it
    and applies conv-BN-ReLU; the final logits are upsampled to the input size.

    Args:
        spatial_dims: must be 3 (the video (T, H, W) as a volume).
        in_channels, out_channels: the encoder's input channels and the classes.
        encoder: a registered video network name (``"r3d_18"``, ``"r2plus1d_18"``, ``"ir_csn_50"``, ...) or a module.
        decoder_channels: channels of each decoder step, coarse to fine (default: the skip's channels, at most 128).
        encoder_kwargs: extra arguments for a named encoder.

    Shapes: (B, C, T, H, W) -> logits (B, K, T, H, W).
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 3,
        out_channels: int = 2,
        encoder: Any = "r3d_18",
        decoder_channels: Sequence[int] | None = None,
        encoder_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if spatial_dims != 3:
            raise ValueError(f"VideoSegNet sees a video (T, H, W) as a volume: spatial_dims must be 3, got {spatial_dims}.")
        if isinstance(encoder, str):
            from medst.networks.registry import create_network

            encoder = create_network(encoder, in_channels=in_channels, **(encoder_kwargs or {}))
        if not hasattr(encoder, "forward_features") or not hasattr(encoder, "feature_channels"):
            raise ValueError("encoder must provide forward_features(x) and feature_channels (VideoResNet, C3D).")
        self.encoder = encoder
        chans = list(encoder.feature_channels)
        n = len(chans)
        dec = list(decoder_channels) if decoder_channels is not None else [min(c, 128) for c in chans[:-1]][::-1]
        if len(dec) != n - 1:
            raise ValueError(f"decoder_channels needs {n - 1} entries (one per skip), got {len(dec)}.")
        steps = []
        c = chans[-1]
        for skip_c, d in zip(chans[-2::-1], dec):
            steps.append(
                nn.Sequential(nn.Conv3d(c + skip_c, d, 3, padding=1, bias=False), nn.BatchNorm3d(d), nn.ReLU(inplace=True))
            )
            c = d
        self.decoder = nn.ModuleList(steps)
        self.head = nn.Conv3d(c, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats: list[torch.Tensor] = self.encoder.forward_features(x)
        h = feats[-1]
        skips = feats[:-1]
        for step in self.decoder:
            skip = skips.pop()
            h = F.interpolate(h, size=skip.shape[2:], mode="trilinear", align_corners=False)
            h = step(torch.cat([h, skip], 1))
        h = self.head(h)
        return F.interpolate(h, size=x.shape[2:], mode="trilinear", align_corners=False)


# ---- registered variants ---------------------------------------------------------------------------------------
# small widths for the tests (the published widths are checked by parameter counts on the meta device)
_EX = dict(
    example_kwargs=dict(out_channels=5, widths=(8, 8, 16, 16)), example_input_shape=(2, 3, 4, 32, 32), example_output_shape=(2, 5)
)


def _vrn(defaults: dict[str, Any], kwargs: dict[str, Any]) -> VideoResNet:
    return VideoResNet(**dict(dict(dict(spatial_dims=3, in_channels=3, out_channels=400), **defaults), **kwargs))


@register_network(example_kwargs=dict(out_channels=5, fc_channels=32), example_input_shape=(1, 3, 16, 32, 32), example_output_shape=(1, 5))
def c3d(**kwargs: Any) -> C3D:
    """C3D (Tran 2015): 8 convs, fc6/fc7 4096, 487 classes (Sports-1M); input (B, 3, 16, 112, 112)."""
    return C3D(**dict(dict(spatial_dims=3, in_channels=3, out_channels=487), **kwargs))


@register_network(**_EX)
def r3d_18(**kwargs: Any) -> VideoResNet:
    """R3D-18 (Tran 2018): 3x3x3 convs in every stage, basic blocks (2, 2, 2, 2)."""
    return _vrn(dict(layers=(2, 2, 2, 2), conv_kinds=("3d",) * 4, stem="basic"), kwargs)


@register_network(**_EX)
def mc3_18(**kwargs: Any) -> VideoResNet:
    """MC3-18 (Tran 2018): 3D convs in stage 1 (after the 3D stem), 2D (1x3x3) convs in stages 2-4."""
    return _vrn(dict(layers=(2, 2, 2, 2), conv_kinds=("3d", "2d", "2d", "2d"), stem="basic"), kwargs)


@register_network(**_EX)
def r2plus1d_18(**kwargs: Any) -> VideoResNet:
    """R(2+1)D-18 (Tran 2018): (2+1)D convs with the paper's mid-plane formula, (2+1)D stem."""
    return _vrn(dict(layers=(2, 2, 2, 2), conv_kinds=("2plus1d",) * 4, stem="r2plus1d"), kwargs)


@register_network(**_EX)
def r2plus1d_34(**kwargs: Any) -> VideoResNet:
    """R(2+1)D-34 (Tran 2018): basic blocks (3, 4, 6, 3), per-conv mid-planes as the VMZ / IG-65M weights."""
    return _vrn(dict(layers=(3, 4, 6, 3), conv_kinds=("2plus1d",) * 4, stem="r2plus1d", midplanes="per_conv"), kwargs)


# CSN: depthwise 3D convs are slow on CPUs; the tests use one block per stage
_EXC = dict(
    example_kwargs=dict(out_channels=5, widths=(4, 4, 8, 8), layers=(1, 1, 1, 1)),
    example_input_shape=(2, 3, 4, 32, 32),
    example_output_shape=(2, 5),
)


@register_network(**_EXC)
def ir_csn_152(**kwargs: Any) -> VideoResNet:
    """ir-CSN-152 (Tran 2019): bottleneck blocks (3, 8, 36, 3) whose 3x3x3 conv is depthwise; pooled stem."""
    return _vrn(dict(block="bottleneck", layers=(3, 8, 36, 3), conv_kinds=("ir",) * 4, stem="pool"), kwargs)


@register_network(**_EXC)
def ip_csn_152(**kwargs: Any) -> VideoResNet:
    """ip-CSN-152 (Tran 2019): bottleneck blocks (3, 8, 36, 3) whose 3x3x3 conv is 1x1x1 + depthwise 3x3x3."""
    return _vrn(dict(block="bottleneck", layers=(3, 8, 36, 3), conv_kinds=("ip",) * 4, stem="pool"), kwargs)


@register_network(**_EXC)
def ir_csn_50(**kwargs: Any) -> VideoResNet:
    """ir-CSN-50 (Tran 2019): bottleneck blocks (3, 4, 6, 3), depthwise 3x3x3 convs; a small CSN."""
    return _vrn(dict(block="bottleneck", layers=(3, 4, 6, 3), conv_kinds=("ir",) * 4, stem="pool"), kwargs)


_EXS = dict(
    example_kwargs=dict(in_channels=1, out_channels=2, encoder_kwargs=dict(widths=(8, 8, 16, 16))),
    example_input_shape=(2, 1, 4, 16, 16),
    example_output_shape=(2, 2, 4, 16, 16),
)


@register_network(**_EXS)
def r3d_18_seg(**kwargs: Any) -> VideoSegNet:
    """VideoSegNet over an R3D-18 encoder: (B, C, T, H, W) -> (B, K, T, H, W)."""
    return VideoSegNet(**dict(dict(spatial_dims=3, in_channels=3, out_channels=2, encoder="r3d_18"), **kwargs))


@register_network(**_EXS)
def r2plus1d_18_seg(**kwargs: Any) -> VideoSegNet:
    """VideoSegNet over an R(2+1)D-18 encoder: (B, C, T, H, W) -> (B, K, T, H, W)."""
    return VideoSegNet(**dict(dict(spatial_dims=3, in_channels=3, out_channels=2, encoder="r2plus1d_18"), **kwargs))
