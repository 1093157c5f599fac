"""MotionForecaster: a ConvLSTM video predictor that moves the pixels of the frame it last saw.

Finn et al. 2016, "Unsupervised Learning for Physical Interaction through Video Prediction",
https://arxiv.org/abs/1605.07157 (CDNA: a few image-wide motion kernels, composited by per-pixel masks), and
Patraucean et al. 2016, "Spatio-temporal video autoencoder with differentiable memory",
https://arxiv.org/abs/1511.06309 (a ConvLSTM that predicts an optical-flow field used to warp the frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from medst.networks.blocks.recurrent_cells import get_cell_class
from medst.networks.layers.patch import depth_to_space, space_to_depth
from medst.networks.nets.encoder_forecaster import FORECASTER_EXAMPLE
from medst.networks.registry import register_network

__all__ = ["MotionForecaster", "check_frame_predictor_args", "cdna_forecaster", "flow_forecaster"]


def check_frame_predictor_args(
    name: str, spatial_dims: int, in_channels: int, hidden: Sequence[int], output_frames: int, patch_size: int
) -> None:
    """The argument checks that medst's 2D frame predictors share (MotionForecaster, CompositeLSTM, ContextVP).

    Raises:
        ValueError: naming the argument, its value and what is expected.
    """
    if spatial_dims != 2:
        raise ValueError(f"{name} predicts 2D frames: spatial_dims must be 2, got {spatial_dims}.")
    if in_channels < 1:
        raise ValueError(f"in_channels must be >= 1, got {in_channels}.")
    if len(hidden) < 1 or min(hidden) < 1:
        raise ValueError(
            f"hidden_channels must list at least one layer of >= 1 channels, e.g. (64, 64), got {list(hidden)}."
        )
    if output_frames < 1:
        raise ValueError(f"output_frames must be >= 1, got {output_frames}.")
    if patch_size < 1:
        raise ValueError(f"patch_size must be >= 1, got {patch_size}.")


class MotionForecaster(nn.Module):
    """Next-frame ConvLSTM predictor whose output is the frame it last saw, *moved*, composited with a generated frame.

    At every step the network reads one frame (cut into ``patch_size`` x ``patch_size`` patches stacked on the
    channel axis, as in :class:`EncoderForecaster`) into a stack of ConvRNN layers; from the concatenated hidden
    states it predicts how that frame's pixels move to the next one, plus a generated frame for what moving cannot
    explain (pixels entering the view, digits crossing) and per-pixel masks that mix them:

    - ``motion="cdna"`` (Finn et al. 2016): ``num_kernels`` normalised ``motion_kernel_size`` x ``motion_kernel_size``
      kernels per sequence and step (from the top layer's state), each convolved with the whole frame; ``1 +
      num_kernels`` softmax masks pick, per pixel, the generated frame or one of the moved copies. A kernel can
      shift (an object moving up to ``motion_kernel_size // 2`` pixels per frame) and blur (when the future is
      uncertain, the blur is what minimises the squared error). Gradients reach every kernel tap, so motion is
      learned quickly (Moving MNIST: within the first 1500 batch-4 steps, see the prediction bundle's README).
    - ``motion="flow"`` (Patraucean et al. 2016): a dense displacement field (pixels, bilinear backward warp) and
      one sigmoid mask between the warped and the generated frame.

    Observed frames are read as they are (teacher forcing); after the last one, each prediction is fed back as the
    next input. ``forward(x)`` returns the ``output_frames`` predictions that follow ``x``;
    ``forward(x, return_context=True)`` also returns the predictions of observed frames 2..T_in made along the way
    (``T_in - 1 + output_frames`` frames), which gives training a target at every step.

    Intensities are expected in [0, 1] (the generated frame is a sigmoid); the prediction is a convex mix of moved
    input pixels and the generated frame, so it stays in the input's range.

    Args:
        spatial_dims: 2 (frames; the motion models here are 2D).
        in_channels: channels of a frame (the predicted frames have the same).
        hidden_channels: hidden channels of each recurrent layer.
        output_frames: how many frames to predict after the input.
        kernel_size: gate kernel size of the recurrent cells.
        cell: ``"lstm"`` or ``"gru"``.
        patch_size: space-to-depth factor; frame sizes must be divisible by it.
        motion: ``"cdna"`` or ``"flow"``.
        num_kernels: CDNA kernels (Finn et al. used 10; two moving objects need ~2-4).
        motion_kernel_size: CDNA kernel size (odd); it expresses motions of up to ``motion_kernel_size // 2``
            pixels per frame.

    Shapes: (B, C, T_in, H, W) -> (B, C, output_frames, H, W) (2D frames only).

    Example::

        net = MotionForecaster(2, in_channels=1, hidden_channels=(64, 64), output_frames=10)
        y = net(torch.rand(4, 1, 10, 64, 64))  # (4, 1, 10, 64, 64)
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        hidden_channels: Sequence[int] = (64, 64),
        output_frames: int = 10,
        kernel_size: int = 3,
        cell: str = "lstm",
        patch_size: int = 4,
        motion: str = "cdna",
        num_kernels: int = 4,
        motion_kernel_size: int = 9,
    ) -> None:
        super().__init__()
        hidden = list(hidden_channels)
        check_frame_predictor_args("MotionForecaster", spatial_dims, in_channels, hidden, output_frames, patch_size)
        if motion not in ("cdna", "flow"):
            raise ValueError(f"motion must be 'cdna' or 'flow', got {motion!r}.")
        if num_kernels < 1:
            raise ValueError(f"num_kernels must be >= 1, got {num_kernels}.")
        if motion_kernel_size < 1 or motion_kernel_size % 2 == 0:
            raise ValueError(f"motion_kernel_size must be odd, got {motion_kernel_size}.")
        self.in_channels = in_channels
        self.output_frames = output_frames
        self.patch_size = patch_size
        self.motion = motion
        self.num_kernels = num_kernels if motion == "cdna" else 0
        self.motion_kernel_size = motion_kernel_size
        self.supports_streaming = False  # the output is future frames, not one output per input frame
        cell_cls = get_cell_class(cell)
        p = patch_size * patch_size
        cells = []
        cin = in_channels * p
        for h in hidden:
            cells.append(cell_cls(2, cin, h, kernel_size=kernel_size))
            cin = h
        self.cells = nn.ModuleList(cells)
        # per pixel: the mixing logits (cdna: generated + one per kernel; flow: dx, dy, then one mask logit) and the
        # generated frame's logits
        self.num_move = 1 + num_kernels if motion == "cdna" else 3
        self.head = nn.Conv2d(sum(hidden), (self.num_move + in_channels) * p, kernel_size=1)
        nn.init.zeros_(self.head.weight)
        with torch.no_grad():  # start by mostly moving (copying) the frame over a dark generated frame
            bias = self.head.bias.view(self.num_move + in_channels, p)
            bias.zero_()
            if motion == "cdna":
                bias[0] = -2.0
            else:
                bias[2] = 2.0
            bias[self.num_move :] = -3.0
        # CDNA: the top layer's state, pooled to 8x8 (its size for 64x64 frames and 4x4 patches), -> the kernels
        self.kernel_features: nn.Module = nn.Identity()
        self.kernel_linear: nn.Module = nn.Identity()
        if motion == "cdna":
            self.kernel_features = nn.Sequential(nn.Conv2d(hidden[-1], 32, 3, stride=2, padding=1), nn.ReLU())
            self.kernel_linear = nn.Linear(32 * 8 * 8, num_kernels * motion_kernel_size * motion_kernel_size)
            nn.init.zeros_(self.kernel_linear.weight)  # uniform kernels at the start
            nn.init.zeros_(self.kernel_linear.bias)

    def _cdna(self, frame: torch.Tensor, top: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        b, c, h, w = frame.shape
        k, nk = self.motion_kernel_size, self.num_kernels
        feats = F.adaptive_avg_pool2d(self.kernel_features(top), 8).flatten(1)
        kern = torch.softmax(self.kernel_linear(feats).float().view(b * nk, k * k), 1)
        kern = kern.view(b, 1, nk, k, k).expand(b, c, nk, k, k).reshape(b * c * nk, 1, k, k)
        moved = F.conv2d(frame.reshape(1, b * c, h, w), kern, padding=k // 2, groups=b * c)
        moved = moved.view(b, c, nk, h, w)
        masks = torch.softmax(m[:, : 1 + nk], 1)
        gen = torch.sigmoid(m[:, 1 + nk :])
        return masks[:, :1] * gen + (masks[:, 1:].unsqueeze(1) * moved).sum(2)

    def _flow(self, frame: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        b, _, h, w = frame.shape
        ys = torch.linspace(-1.0, 1.0, h, device=frame.device, dtype=torch.float32)
        xs = torch.linspace(-1.0, 1.0, w, device=frame.device, dtype=torch.float32)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        grid = torch.stack([gx + m[:, 0] * (2.0 / max(w - 1, 1)), gy + m[:, 1] * (2.0 / max(h - 1, 1))], -1)
        warped = F.grid_sample(frame, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        g = torch.sigmoid(m[:, 2:3])
        return g * warped + (1.0 - g) * torch.sigmoid(m[:, 3:])

    def forward(self, x: torch.Tensor, return_context: bool = False) -> torch.Tensor:
        """x: (B, C, T_in, H, W) in [0, 1] -> the next ``output_frames`` frames (B, C, T_out, H, W); with
        ``return_context`` the predictions of frames 2..T_in come first (B, C, T_in - 1 + T_out, H, W)."""
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected frames (B, {self.in_channels}, T, H, W), got shape {list(x.shape)} (2D frames only)."
            )
        t_in = x.shape[2]
        states: list[list[torch.Tensor]] = []
        outs: list[torch.Tensor] = []
        frame = x[:, :, 0]
        for t in range(t_in - 1 + self.output_frames):
            if t > 0:
                frame = x[:, :, t] if t < t_in else outs[-1]
            z = space_to_depth(frame, self.patch_size)
            hs: list[torch.Tensor] = []
            for i, cell in enumerate(self.cells):
                if t == 0:
                    z, st = cell(z, None)
                    states.append(st)
                else:
                    z, st = cell(z, states[i])
                    states[i] = st
                hs.append(z)
            if t < t_in - 1 and not return_context:
                continue  # an observed frame follows: its prediction is not asked for
            m = depth_to_space(self.head(torch.cat(hs, 1)), self.patch_size).float()
            if self.motion == "cdna":
                outs.append(self._cdna(frame.float(), hs[-1], m))
            else:
                outs.append(self._flow(frame.float(), m))
        return torch.stack(outs, 2)


@register_network(**FORECASTER_EXAMPLE)
def cdna_forecaster(**kwargs: Any) -> MotionForecaster:
    """Moving MNIST 64x64, 10 -> 10 frames: two 64-channel ConvLSTMs on 4x4 patches, 4 CDNA kernels of 9x9."""
    defaults = dict(in_channels=1, hidden_channels=(64, 64), output_frames=10, patch_size=4, motion="cdna")
    return MotionForecaster(**dict(defaults, **kwargs))


@register_network(**FORECASTER_EXAMPLE)
def flow_forecaster(**kwargs: Any) -> MotionForecaster:
    """The same with a dense flow field and a bilinear warp instead of CDNA kernels."""
    defaults = dict(in_channels=1, hidden_channels=(64, 64), output_frames=10, patch_size=4, motion="flow")
    return MotionForecaster(**dict(defaults, **kwargs))
