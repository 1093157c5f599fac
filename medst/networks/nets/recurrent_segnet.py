"""RecurrentSegNet: per-frame convolutional encoder-decoder with convolutional recurrent layers at the coarse scales."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Conv

from medst.networks.nets.convrnn import ConvRNN
from medst.networks.registry import register_network

__all__ = [
    "RecurrentSegNet",
    "convlstm_seg_small",
    "convgru_seg_small",
    "convlstm_seg_medium",
    "bi_convlstm_seg_small",
    "convlstm_seg4d_small",
]


def _double_conv(
    spatial_dims: int, c_in: int, c_out: int, stride: int, kernel_size: int, norm: Any, act: Any, dropout: float
) -> nn.Sequential:
    return nn.Sequential(
        Convolution(
            spatial_dims, c_in, c_out, strides=stride, kernel_size=kernel_size, norm=norm, act=act, dropout=dropout
        ),
        Convolution(spatial_dims, c_out, c_out, kernel_size=kernel_size, norm=norm, act=act, dropout=dropout),
    )


class _EncoderLevel(nn.Module):
    """A per-frame conv block, then (optionally) a ConvRNN over time at this scale."""

    def __init__(self, block: nn.Module, rnn: ConvRNN | None) -> None:
        super().__init__()
        self.block = block
        self.rnn = rnn
        self.num_states = rnn.num_state_tensors if rnn is not None else 0

    def forward(
        self, x: torch.Tensor, b: int, t: int, state: list[torch.Tensor] | None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x: (B*T, C, *spatial) -> ((B*T, C', *spatial'), this level's new recurrent state)."""
        x = self.block(x)
        rnn = self.rnn
        if rnn is None:
            return x, []
        spatial = list(x.shape[2:])
        y, st = rnn.forward_frames(x.view([b, t, x.shape[1]] + spatial), state)
        return y.reshape([b * t, y.shape[2]] + spatial), st


class _DecoderLevel(nn.Module):
    """Upsample to the skip's size, concatenate the skip, conv block."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[2:], mode="nearest")
        return self.block(torch.cat([x, skip], 1))


class RecurrentSegNet(nn.Module):
    """Recurrent segmentation network for videos (``spatial_dims=2``) and 4D scans (``spatial_dims=3``).

    A per-frame U-Net-like encoder (shared over frames and run as one batched call over ``B * T`` frames),
    convolutional recurrent layers (:class:`ConvRNN`, ConvLSTM of Shi et al. 2015, https://arxiv.org/abs/1506.04214,
    or ConvGRU as in Siam et al. 2016, https://arxiv.org/abs/1611.05435) on the coarsest ``recurrent_levels``
    scales, and a per-frame decoder with skip connections; the recurrent features replace the encoder's features at
    their scale, so the decoder and every finer skip see temporal context.

    Args:
        spatial_dims: 2 (video frames) or 3 (the volumes of a 4D scan).
        in_channels: input channels C.
        out_channels: classes K.
        channels: encoder channels per scale; each scale after the first halves the resolution.
        cell: ``"lstm"`` or ``"gru"``.
        recurrent_levels: how many of the coarsest scales get recurrent layers (1 .. len(channels)).
        rnn_layers: recurrent layers at each such scale.
        kernel_size: kernel size of the convolutions and of the gate convolutions.
        bidirectional: bidirectional recurrent layers (sees the future; no streaming).
        residual: residual connections around the recurrent layers.
        peephole: per-channel peephole connections (LSTM only).
        rnn_norm: None or ``"group"``: GroupNorm on the gates.
        norm, act, dropout: of the per-frame convolutions (MONAI names, e.g. ``"instance"``, ``"relu"``).

    Shapes:
        input (B, C, T, *spatial) -> per-frame logits (B, K, T, *spatial). Any spatial size works (upsampling
        matches each skip's size); sizes divisible by ``2 ** (len(channels) - 1)`` keep every scale exact.

    State: the recurrent layers' states (a flat list, coarsest scale first, see :class:`ConvRNN`);
    ``net(x2, state=s)`` after ``_, s = net(x1, return_state=True)`` continues the sequence exactly, so a streaming
    inferer can carry it across time chunks (``supports_streaming``, unless bidirectional).

    Example::

        net = RecurrentSegNet(2, in_channels=3, out_channels=2, channels=(16, 32, 64), cell="lstm")
        logits = net(torch.rand(1, 3, 8, 64, 64))   # (1, 2, 8, 64, 64)
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int] = (16, 32, 64),
        cell: str = "lstm",
        recurrent_levels: int = 1,
        rnn_layers: int = 1,
        kernel_size: int = 3,
        bidirectional: bool = False,
        residual: bool = False,
        peephole: bool = False,
        rnn_norm: str | None = None,
        norm: Any = ("instance", {"affine": True}),
        act: Any = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        channels = list(channels)
        if spatial_dims not in (1, 2, 3):
            raise ValueError(f"spatial_dims must be 2 (video) or 3 (4D scan), got {spatial_dims}.")
        if len(channels) < 1:
            raise ValueError("channels must list at least one scale, e.g. (16, 32, 64).")
        if not 1 <= recurrent_levels <= len(channels):
            raise ValueError(f"recurrent_levels must be in 1..{len(channels)} (len(channels)), got {recurrent_levels}.")
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"in_channels and out_channels must be >= 1, got {in_channels}, {out_channels}.")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.supports_streaming = not bidirectional
        levels = []
        c_prev = in_channels
        n = len(channels)
        for i, c in enumerate(channels):
            block = _double_conv(spatial_dims, c_prev, c, 1 if i == 0 else 2, kernel_size, norm, act, dropout)
            rnn = None
            if i >= n - recurrent_levels:
                rnn = ConvRNN(
                    spatial_dims,
                    c,
                    hidden_channels=c,
                    num_layers=rnn_layers,
                    kernel_size=kernel_size,
                    cell=cell,
                    bidirectional=bidirectional,
                    residual=residual,
                    peephole=peephole,
                    norm=rnn_norm,
                    norm_groups=1,
                )
            levels.append(_EncoderLevel(block, rnn))
            # a bidirectional rnn doubles the channels: the next scale and the skip see rnn.out_channels
            c_prev = c if rnn is None else rnn.out_channels
            channels[i] = c_prev
        self.encoder = nn.ModuleList(levels)
        decoder = []
        for i in range(n - 2, -1, -1):
            decoder.append(
                _DecoderLevel(
                    _double_conv(spatial_dims, channels[i + 1] + channels[i], channels[i], 1, kernel_size, norm, act, dropout)
                )
            )
        self.decoder = nn.ModuleList(decoder)
        self.head = Conv[Conv.CONV, spatial_dims](channels[0], out_channels, kernel_size=1)
        self.num_state_tensors = sum(lv.num_states for lv in levels)

    def forward(
        self, x: torch.Tensor, state: list[torch.Tensor] | None = None, return_state: bool = False
    ) -> Union[torch.Tensor, tuple[torch.Tensor, list[torch.Tensor]]]:  # noqa: UP007  (TorchScript)
        """x: (B, C, T, *spatial) -> logits (B, K, T, *spatial) [, state]."""
        if x.dim() != self.spatial_dims + 3:
            raise ValueError(
                f"expected input (B, C, T, *spatial) with {self.spatial_dims} spatial dims, got shape {list(x.shape)}."
            )
        if state is not None and len(state) != self.num_state_tensors:
            raise ValueError(f"state must hold {self.num_state_tensors} tensors, got {len(state)}.")
        b, c, t = x.shape[0], x.shape[1], x.shape[2]
        spatial = list(x.shape[3:])
        h = x.transpose(1, 2).reshape([b * t, c] + spatial)
        skips: list[torch.Tensor] = []
        new_state: list[torch.Tensor] = []
        i = 0
        for level in self.encoder:
            s: list[torch.Tensor] | None = None
            if state is not None and level.num_states > 0:
                s = state[i : i + level.num_states]
            i += level.num_states
            h, st = level(h, b, t, s)
            new_state = new_state + st
            skips.append(h)
        skips.pop()
        for level in self.decoder:
            h = level(h, skips.pop())
        h = self.head(h)
        out = h.view([b, t, self.out_channels] + list(h.shape[2:])).transpose(1, 2)
        if return_state:
            return out, new_state
        return out


# ---- registered variants ---------------------------------------------------------------------------------------
_EX2 = dict(example_kwargs=dict(in_channels=2, out_channels=3, channels=(4, 8)), example_input_shape=(2, 2, 3, 16, 16), example_output_shape=(2, 3, 3, 16, 16))
_EX3 = dict(example_kwargs=dict(in_channels=1, out_channels=2, channels=(4, 8)), example_input_shape=(1, 1, 3, 8, 8, 8), example_output_shape=(1, 2, 3, 8, 8, 8))


def _seg(defaults: dict[str, Any], kwargs: dict[str, Any]) -> RecurrentSegNet:
    return RecurrentSegNet(**dict(dict(dict(spatial_dims=2, in_channels=1, out_channels=2), **defaults), **kwargs))


@register_network(**_EX2)
def convlstm_seg_small(**kwargs: Any) -> RecurrentSegNet:
    """RecurrentSegNet for videos: channels 16/32/64, one ConvLSTM layer at the coarsest scale."""
    return _seg(dict(channels=(16, 32, 64), cell="lstm"), kwargs)


@register_network(**_EX2)
def convgru_seg_small(**kwargs: Any) -> RecurrentSegNet:
    """RecurrentSegNet for videos: channels 16/32/64, one ConvGRU layer at the coarsest scale."""
    return _seg(dict(channels=(16, 32, 64), cell="gru"), kwargs)


@register_network(**_EX2)
def convlstm_seg_medium(**kwargs: Any) -> RecurrentSegNet:
    """RecurrentSegNet for videos: channels 32/64/128/256, ConvLSTM layers at the two coarsest scales."""
    return _seg(dict(channels=(32, 64, 128, 256), cell="lstm", recurrent_levels=2), kwargs)


@register_network(**_EX2)
def bi_convlstm_seg_small(**kwargs: Any) -> RecurrentSegNet:
    """RecurrentSegNet for whole clips: channels 16/32/64, a bidirectional ConvLSTM at the coarsest scale."""
    return _seg(dict(channels=(16, 32, 64), cell="lstm", bidirectional=True), kwargs)


@register_network(**_EX3)
def convlstm_seg4d_small(**kwargs: Any) -> RecurrentSegNet:
    """RecurrentSegNet for 4D scans (3D frames): channels 16/32/64, one 3D ConvLSTM layer at the coarsest scale."""
    return _seg(dict(spatial_dims=3, channels=(16, 32, 64), cell="lstm"), kwargs)
