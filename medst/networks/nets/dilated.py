"""Dilated convolutional networks that keep full resolution: DilatedSegNet (segmentation) and DilatedClassifier."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import torch
import torch.nn as nn
from monai.networks.layers.factories import Conv, Pool
from monai.networks.layers.utils import get_act_layer, get_norm_layer
from monai.networks.nets import HighResNet

from medst.networks.registry import register_network

__all__ = [
    "DilatedResidualBlock",
    "DilatedSegNet",
    "DilatedClassifier",
    "highresnet",
    "dilated_context",
    "dilated_classifier",
]


def _stem(spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int, norm: Any, act: Any) -> nn.Module:
    """Full-resolution stem: a "same" convolution, the norm (if any) and the activation."""
    return nn.Sequential(
        Conv[Conv.CONV, spatial_dims](in_channels, out_channels, kernel_size, padding=kernel_size // 2),
        get_norm_layer(norm, spatial_dims, out_channels) if norm is not None else nn.Identity(),
        get_act_layer(act),
    )


class DilatedResidualBlock(nn.Module):
    """Pre-activation residual block of two dilated convolutions (HighResNet, Li et al. 2017,
    https://arxiv.org/abs/1707.01992): ``y = x' + conv(act(norm(conv(act(norm(x))))))`` where ``x'`` is ``x`` or its
    1x1 projection when channels change. ``residual=False`` drops the shortcut (a plain dilated conv stack, as in
    the context module of Yu & Koltun 2016, https://arxiv.org/abs/1511.07122).

    Shapes: (B, C_in, *spatial) -> (B, C_out, *spatial), the same spatial size.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        dilation: int = 1,
        kernel_size: int = 3,
        norm: Any = "batch",
        act: Any = "relu",
        residual: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd to keep the size, got {kernel_size}.")
        if dilation < 1:
            raise ValueError(f"dilation must be >= 1, got {dilation}.")
        conv = Conv[Conv.CONV, spatial_dims]
        pad = dilation * (kernel_size // 2)
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(2):
            layers += [
                get_norm_layer(norm, spatial_dims, c) if norm is not None else nn.Identity(),
                get_act_layer(act),
                conv(c, out_channels, kernel_size, padding=pad, dilation=dilation),
            ]
            c = out_channels
        if dropout > 0:
            layers.insert(-1, nn.Dropout(dropout))
        self.body = nn.Sequential(*layers)
        self.residual = residual
        self.shortcut: nn.Module = (
            conv(in_channels, out_channels, 1, bias=False) if residual and in_channels != out_channels else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        if self.residual:
            y = y + self.shortcut(x)
        return y


class DilatedSegNet(nn.Module):
    """Full-resolution segmentation network of stacked dilated residual blocks, generic over ``spatial_dims`` and the
    dilation schedule: HighResNet-style (Li et al. 2017, "On the Compactness, Efficiency, and Representation of 3D
    Convolutional Networks: Brain Parcellation as a Pretext Task", https://arxiv.org/abs/1707.01992) with its
    default schedule; the context aggregation module of Yu & Koltun 2016 ("Multi-Scale Context Aggregation by
    Dilated Convolutions", https://arxiv.org/abs/1511.07122) with ``dilations=(1, 1, 2, 4, 8, 16, 1)``,
    ``blocks_per_stage=1``, ``residual=False``.

    The published HighResNet is MONAI's ``HighResNet`` (the registered ``highresnet``). This class differs from it
    in: any dilation schedule and ``residual=False`` (MONAI fixes dilation ``2**stage`` and always adds the
    shortcut); a 1x1 projection shortcut where channels change (MONAI zero-pads the channels by default); biased
    convolutions (MONAI's have no bias); no 80-channel 1x1 layer before the classes; and a plain 1x1 convolution as
    the head, giving unbounded logits (MONAI's class layer is followed by its norm and activation, ReLU by default).

    Args:
        spatial_dims: 2 or 3 (a video as a (T, H, W) volume, or a 3D scan).
        in_channels: input channels.
        out_channels: classes.
        channels: channels per stage (an int repeats).
        dilations: dilation of each stage; its length sets the number of stages.
        blocks_per_stage: residual blocks per stage (int or one per stage).
        kernel_size: odd kernel size.
        norm, act: MONAI names (``"batch"``, ``"instance"``, ``("group", {"num_groups": 4})``; ``"relu"``, ...).
        residual: residual shortcuts (HighResNet) or a plain dilated stack.
        dropout: dropout before each block's second convolution.

    Shapes: (B, C, *spatial) -> logits (B, K, *spatial), the same spatial size (no down-sampling).

    Example::

        net = DilatedSegNet(3, 1, 4)                      # HighResNet: 16/32/64 channels, dilations 1/2/4
        y = net(torch.rand(1, 1, 32, 32, 32))             # (1, 4, 32, 32, 32)
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int] | int = (16, 32, 64),
        dilations: Sequence[int] = (1, 2, 4),
        blocks_per_stage: Sequence[int] | int = 3,
        kernel_size: int = 3,
        norm: Any = "batch",
        act: Any = "relu",
        residual: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        dilations = list(dilations)
        n = len(dilations)
        if n < 1:
            raise ValueError("dilations must list at least one stage, e.g. (1, 2, 4).")
        channels = [channels] * n if isinstance(channels, int) else list(channels)
        blocks = [blocks_per_stage] * n if isinstance(blocks_per_stage, int) else list(blocks_per_stage)
        if len(channels) != n or len(blocks) != n:
            raise ValueError(
                f"channels ({len(channels)}) and blocks_per_stage ({len(blocks)}) must have one entry per dilation ({n})."
            )
        if spatial_dims not in (1, 2, 3):
            raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims}.")
        conv = Conv[Conv.CONV, spatial_dims]
        self.stem = _stem(spatial_dims, in_channels, channels[0], kernel_size, norm, act)
        body: list[nn.Module] = []
        c = channels[0]
        for c_out, d, nb in zip(channels, dilations, blocks):
            for _ in range(nb):
                body.append(DilatedResidualBlock(spatial_dims, c, c_out, d, kernel_size, norm, act, residual, dropout))
                c = c_out
        self.body = nn.Sequential(*body)
        self.head = conv(c, out_channels, 1)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.stem(x)))


class DilatedClassifier(nn.Module):
    """Classification network of dilated 3D convolutions for brain MRI, after Wang et al. 2019, "Dilated 3D
    Convolutional Neural Networks for Brain MRI Data Classification" (IEEE Access): stages of dilated residual blocks
    (growing dilation widens the receptive field without more parameters), each followed by a stride-2 max pool,
    then global average pooling, dropout and a linear classifier.

    The stage layout here is generic (channels, dilations, blocks per stage are arguments); the defaults are a small
    4-stage network, not a copy of the paper's exact layer table, which was not available to check.

    Args:
        spatial_dims: 3 for scans (2 works too).
        in_channels: input channels.
        out_channels: classes.
        channels: channels per stage.
        dilations: dilation per stage.
        blocks_per_stage: residual blocks per stage.
        kernel_size, norm, act: as in :class:`DilatedSegNet`.
        dropout: dropout before the classifier.
        features_only: forward returns each stage's features (before its pool) instead of logits.

    Shapes: (B, C, *spatial) -> logits (B, K).

    Example::

        net = DilatedClassifier(3, 1, 2)
        logits = net(torch.rand(2, 1, 64, 64, 64))   # (2, 2)
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 1,
        out_channels: int = 2,
        channels: Sequence[int] = (16, 32, 64, 128),
        dilations: Sequence[int] = (1, 2, 4, 2),
        blocks_per_stage: Sequence[int] | int = 1,
        kernel_size: int = 3,
        norm: Any = "batch",
        act: Any = "relu",
        dropout: float = 0.5,
        features_only: bool = False,
    ) -> None:
        super().__init__()
        channels = list(channels)
        dilations = list(dilations)
        n = len(channels)
        blocks = [blocks_per_stage] * n if isinstance(blocks_per_stage, int) else list(blocks_per_stage)
        if n < 1 or len(dilations) != n or len(blocks) != n:
            raise ValueError(
                f"channels ({n}), dilations ({len(dilations)}) and blocks_per_stage ({len(blocks)}) need one entry per stage."
            )
        if spatial_dims not in (1, 2, 3):
            raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims}.")
        if out_channels < 1:
            raise ValueError(f"out_channels (classes) must be >= 1, got {out_channels}.")
        pool = Pool[Pool.MAX, spatial_dims]
        self.stem = _stem(spatial_dims, in_channels, channels[0], kernel_size, norm, act)
        stages: list[nn.Module] = []
        c = channels[0]
        for c_out, d, nb in zip(channels, dilations, blocks):
            layers: list[nn.Module] = []
            for _ in range(nb):
                layers.append(DilatedResidualBlock(spatial_dims, c, c_out, d, kernel_size, norm, act, True))
                c = c_out
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.downsample = pool(kernel_size=2, stride=2, ceil_mode=True)
        self.feature_channels = channels
        self.features_only = features_only
        self.global_pool = Pool[Pool.ADAPTIVEAVG, spatial_dims](1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c, out_channels)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each stage's output (before its pool)."""
        feats: list[torch.Tensor] = []
        h = self.stem(x)
        for i, stage in enumerate(self.stages):
            if i > 0:
                h = self.downsample(h)
            h = stage(h)
            feats.append(h)
        return feats

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, list[torch.Tensor]]:  # noqa: UP007
        feats = self.forward_features(x)
        if self.features_only:
            return feats
        return self.fc(self.dropout(self.global_pool(feats[-1]).flatten(1)))


# ---- registered variants ---------------------------------------------------------------------------------------
_SMALL_HIGHRESNET = (
    {"name": "conv_0", "n_features": 4, "kernel_size": 3},
    {"name": "res_1", "n_features": 4, "kernels": (3, 3), "repeat": 1},
    {"name": "res_2", "n_features": 4, "kernels": (3, 3), "repeat": 1},
    {"name": "res_3", "n_features": 8, "kernels": (3, 3), "repeat": 1},
    {"name": "conv_1", "n_features": 8, "kernel_size": 1},
    {"name": "conv_2", "kernel_size": 1},
)


@register_network(example_kwargs=dict(in_channels=1, out_channels=2, layer_params=_SMALL_HIGHRESNET), example_input_shape=(1, 1, 12, 12, 12), example_output_shape=(1, 2, 12, 12, 12))
def highresnet(**kwargs: Any) -> HighResNet:
    """HighResNet (Li 2017) as MONAI's ``HighResNet``: 3D, 3 x 3 residual blocks of 16/32/64 channels at dilations
    1/2/4, a 1x1 layer of 80 channels, full resolution. Takes MONAI's arguments; the generic, differently headed
    variant is :class:`DilatedSegNet`."""
    return HighResNet(**dict(dict(spatial_dims=3, in_channels=1, out_channels=2), **kwargs))


@register_network(example_kwargs=dict(in_channels=1, out_channels=2, channels=4), example_input_shape=(1, 1, 12, 12, 12), example_output_shape=(1, 2, 12, 12, 12))
def dilated_context(**kwargs: Any) -> DilatedSegNet:
    """Context aggregation network (Yu & Koltun 2016) in 3D: 7 plain blocks of 32 channels, dilations 1,1,2,4,8,16,1."""
    defaults = dict(
        spatial_dims=3, in_channels=1, out_channels=2, channels=32, dilations=(1, 1, 2, 4, 8, 16, 1),
        blocks_per_stage=1, residual=False,
    )
    return DilatedSegNet(**dict(defaults, **kwargs))


@register_network(
    example_kwargs=dict(in_channels=1, out_channels=3, channels=(4, 8, 8, 8)),
    example_input_shape=(2, 1, 16, 16, 16),
    example_output_shape=(2, 3),
)
def dilated_classifier(**kwargs: Any) -> DilatedClassifier:
    """Dilated 3D CNN classifier for brain MRI (after Wang 2019): 4 stages 16/32/64/128, dilations 1/2/4/2."""
    return DilatedClassifier(**dict(dict(spatial_dims=3, in_channels=1, out_channels=2), **kwargs))
