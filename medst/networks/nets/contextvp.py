"""ContextVP: next-frame prediction from parallel multi-dimensional LSTM units that see the whole past context.

Byeon W., Wang Q., Srivastava R. K., Koumoutsakos P., "ContextVP: Fully Context-Aware Video Prediction", ECCV 2018,
https://arxiv.org/abs/1710.08518. A ConvLSTM that walks time sees, for each pixel, only a cone of the past that
grows by the kernel's reach per step and per layer (the paper's "blind spots"); a Parallel Multi-Dimensional LSTM
(PMD) unit adds recurrent sweeps along the spatial directions, so that one unit reaches every pixel of the past
frames, and a blending unit combines the directions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from medst.networks.blocks.recurrent_cells import get_cell_class
from medst.networks.layers.patch import depth_to_space, space_to_depth
from medst.networks.nets.convrnn import RecurrentDirection
from medst.networks.nets.encoder_forecaster import FORECASTER_EXAMPLE
from medst.networks.nets.motion_forecaster import check_frame_predictor_args
from medst.networks.registry import register_network

__all__ = ["PMDUnit", "ContextVP", "contextvp_4", "contextvp_small"]


class PMDUnit(nn.Module):
    """A Parallel Multi-Dimensional LSTM unit and its blending unit (ContextVP, Byeon et al. 2018).

    Five recurrent blocks read the same input in parallel, each along one direction of ``(t, h, w)``:

    - ``t-``: a 2D ConvLSTM walking time forward over whole frames (the past only: there is no ``t+``);
    - ``h+`` / ``h-``: 1D ConvLSTMs walking each frame's rows top-down / bottom-up (a step reads one row);
    - ``w+`` / ``w-``: the same over columns, left-right / right-left.

    The spatial sweeps stay inside a frame, so every output at time t depends on frames <= t only: one pass over a
    sequence predicts every next frame. After one unit a pixel sees its whole current frame (the four sweeps) and a
    cone of the past (the time sweep); from the second unit on, the time sweep carries whole-frame context of every
    past frame: the entire past. Directional weight sharing (``weight_sharing=True``, the paper's DWS): opposite
    directions share one cell (``h+`` with ``h-``, ``w+`` with ``w-``). The blending unit is a 1x1 convolution over
    the five directions' concatenated hidden states (a learned per-pixel weighting of the directions).

    Args:
        in_channels: input channels.
        hidden_channels: hidden channels of each direction's cell.
        out_channels: channels after blending.
        kernel_size: odd kernel size of every gate convolution (k x k in time, k in the sweeps).
        cell: ``"lstm"`` (the paper) or ``"gru"``.
        weight_sharing: share the cells of opposite spatial directions.

    Shapes: ``forward(x, state)`` with x (B, T, C, H, W) -> ((B, T, out_channels, H, W), the time cell's state).
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        cell: str = "lstm",
        weight_sharing: bool = True,
    ) -> None:
        super().__init__()
        cell_cls = get_cell_class(cell)
        k = kernel_size
        self.time = RecurrentDirection(cell_cls(2, in_channels, hidden_channels, kernel_size=k))
        rows = cell_cls(1, in_channels, hidden_channels, kernel_size=k)
        cols = cell_cls(1, in_channels, hidden_channels, kernel_size=k)
        rows_back = rows if weight_sharing else cell_cls(1, in_channels, hidden_channels, kernel_size=k)
        cols_back = cols if weight_sharing else cell_cls(1, in_channels, hidden_channels, kernel_size=k)
        self.weight_sharing = weight_sharing
        self.down = RecurrentDirection(rows)
        self.up = RecurrentDirection(rows_back, reverse=True)
        self.right = RecurrentDirection(cols)
        self.left = RecurrentDirection(cols_back, reverse=True)
        self.blend = nn.Conv2d(5 * hidden_channels, out_channels, kernel_size=1)
        self.num_states = self.time.num_states
        self.out_channels = out_channels

    def forward(
        self, x: torch.Tensor, state: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x: (B, T, C, H, W) -> ((B, T, out_channels, H, W), the time direction's new state)."""
        b, t, c, h, w = x.shape
        t_out, new_state = self.time(x, state)
        frames = x.reshape(b * t, c, h, w)
        rows = frames.permute(0, 2, 1, 3).contiguous()  # (N, H, C, W): a sequence of rows
        cols = frames.permute(0, 3, 1, 2).contiguous()  # (N, W, C, H): a sequence of columns
        if self.weight_sharing:  # one forward sweep over the sequences and their reversals (half the steps)
            n = rows.shape[0]
            both, _ = self.down(torch.cat([rows, rows.flip(1)], 0))
            down, up = both[:n], both[n:].flip(1)
            both, _ = self.right(torch.cat([cols, cols.flip(1)], 0))
            right, left = both[:n], both[n:].flip(1)
        else:
            down, _ = self.down(rows)
            up, _ = self.up(rows)
            right, _ = self.right(cols)
            left, _ = self.left(cols)
        parts = [
            t_out.reshape([b * t] + list(t_out.shape[2:])),
            torch.cat([down, up], 2).permute(0, 2, 1, 3),  # back to (N, 2 * hidden, H, W)
            torch.cat([right, left], 2).permute(0, 2, 3, 1),
        ]
        y = self.blend(torch.cat(parts, 1))
        return y.view([b, t] + list(y.shape[1:])), new_state


class ContextVP(nn.Module):
    """ContextVP (Byeon et al. 2018, https://arxiv.org/abs/1710.08518): a stack of :class:`PMDUnit` layers and a
    1x1 output convolution that predicts, at every step, the next frame.

    Frames are cut into ``patch_size`` patches first (space-to-depth, as :class:`EncoderForecaster`; the paper
    works on pixels: ``patch_size=1``). With ``skip=True`` every layer from the second on adds the output of the
    layer below it to its own (a skip connection over one layer, with a 1x1 projection where widths differ), so
    the third layer and the output read the sums. The output is a
    sigmoid (intensities on [0, 1]). Observed frames are read as they are; after the last one each prediction is
    fed back as the next input (the time sweep's state continues; the spatial sweeps run on the new frame only).
    ``forward(x)`` returns the ``output_frames`` frames after ``x``; ``forward(x, return_context=True)`` also
    returns the predictions of frames 2..T_in made along the way (``T_in - 1 + output_frames`` frames), the layout
    of :class:`MotionForecaster`.

    Args:
        spatial_dims: 2 (video frames).
        in_channels: channels of a frame.
        hidden_channels: hidden channels of each PMD layer's direction cells.
        output_frames: how many frames to predict after the input.
        kernel_size: gate kernel size.
        cell: ``"lstm"`` or ``"gru"``.
        patch_size: space-to-depth factor; frame sizes must be divisible by it.
        weight_sharing: directional weight sharing between opposite spatial directions.
        skip: skip connections over one layer.
        blend_channels: channels after each blending unit (default: the layer's hidden channels).

    Shapes: (B, C, T_in, H, W) -> (B, C, output_frames, H, W).

    Example::

        net = ContextVP(2, 1, hidden_channels=(32, 32), output_frames=10, patch_size=4)
        y = net(torch.rand(2, 1, 10, 64, 64))  # (2, 1, 10, 64, 64)
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        hidden_channels: Sequence[int] = (32, 32),
        output_frames: int = 10,
        kernel_size: int = 3,
        cell: str = "lstm",
        patch_size: int = 4,
        weight_sharing: bool = True,
        skip: bool = True,
        blend_channels: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        hidden = list(hidden_channels)
        check_frame_predictor_args("ContextVP", spatial_dims, in_channels, hidden, output_frames, patch_size)
        blend = list(blend_channels) if blend_channels is not None else hidden
        if len(blend) != len(hidden):
            raise ValueError(f"blend_channels must list one width per layer ({len(hidden)}), got {blend}.")
        self.in_channels = in_channels
        self.output_frames = output_frames
        self.patch_size = patch_size
        self.skip = skip
        self.supports_streaming = False  # the output is future frames, not one output per input frame
        p = patch_size * patch_size
        layers = []
        projections = []
        cin = in_channels * p
        for i, (h, o) in enumerate(zip(hidden, blend)):
            layers.append(PMDUnit(cin, h, o, kernel_size=kernel_size, cell=cell, weight_sharing=weight_sharing))
            # the skip from layer i - 1's output to layer i's (a 1x1 projection where the widths differ)
            use = skip and i >= 1 and blend[i - 1] != o
            projections.append(nn.Conv2d(blend[i - 1], o, 1, bias=False) if use else nn.Identity())
            cin = o
        self.layers = nn.ModuleList(layers)
        self.projections = nn.ModuleList(projections)
        self.head = nn.Conv2d(blend[-1], in_channels * p, kernel_size=1)

    def _step(self, z: torch.Tensor, states: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Patch frames z (B, T, F, h, w) through every layer from ``states`` (empty: zero states) -> the logits of
        the next frames (B, T, F, h, w) and the new states."""
        b, t = z.shape[0], z.shape[1]
        new_states: list[torch.Tensor] = []
        below = z  # the previous layer's output (before its skip sum)
        i = 0
        for k, (layer, proj) in enumerate(zip(self.layers, self.projections)):
            n = layer.num_states
            s: list[torch.Tensor] | None = None
            if len(states) > 0:
                s = states[i : i + n]
            i += n
            y, st = layer(z, s)
            new_states = new_states + st
            z = y
            if self.skip and k >= 1:  # the next layer (or the head) reads this output plus the one below
                res = proj(below.reshape([b * t] + list(below.shape[2:])))
                z = y + res.view([b, t] + list(res.shape[1:]))
            below = y
        out = self.head(z.reshape([b * t] + list(z.shape[2:])))
        return out.view([b, t] + list(out.shape[1:])), new_states

    def forward(self, x: torch.Tensor, return_context: bool = False) -> torch.Tensor:
        """x: (B, C, T_in, H, W) on [0, 1] -> the next ``output_frames`` frames (B, C, T_out, H, W); with
        ``return_context`` the predictions of frames 2..T_in come first (B, C, T_in - 1 + T_out, H, W)."""
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected frames (B, {self.in_channels}, T, H, W), got shape {list(x.shape)} (2D frames only)."
            )
        if not torch.jit.is_scripting():  # a MONAI MetaTensor batch: its meta does not survive the sweeps' batching
            x = x.as_subclass(torch.Tensor)
        b, c, t_in, h, w = x.shape
        z = space_to_depth(x.transpose(1, 2).reshape(b * t_in, c, h, w), self.patch_size)
        z = z.view([b, t_in] + list(z.shape[1:]))
        logits, states = self._step(z, [])
        preds = torch.sigmoid(logits)  # (B, T_in, F, h, w): the predictions of frames 2 .. T_in + 1
        outs = [preds] if return_context else [preds[:, -1:]]
        last = preds[:, -1:]
        for _ in range(self.output_frames - 1):
            logits, states = self._step(last, states)
            last = torch.sigmoid(logits)
            outs.append(last)
        y = torch.cat(outs, 1)
        t = y.shape[1]
        y = depth_to_space(y.reshape([b * t] + list(y.shape[2:])), self.patch_size)
        return y.view(b, t, c, h, w).transpose(1, 2)


@register_network(**FORECASTER_EXAMPLE)
def contextvp_4(**kwargs: Any) -> ContextVP:
    """ContextVP-4 (Byeon 2018): four PMD layers (64, 64, 128, 128) on pixels, 3x3 gates, DWS, skip connections."""
    defaults = dict(in_channels=1, hidden_channels=(64, 64, 128, 128), output_frames=10, patch_size=1, kernel_size=3)
    return ContextVP(**dict(defaults, **kwargs))


@register_network(**FORECASTER_EXAMPLE)
def contextvp_small(**kwargs: Any) -> ContextVP:
    """ContextVP at CPU size for 64x64 frames: four 48-channel PMD layers on 8x8 patches (8x8 grids)."""
    defaults = dict(in_channels=1, hidden_channels=(48, 48, 48, 48), output_frames=10, patch_size=8, kernel_size=3)
    return ContextVP(**dict(defaults, **kwargs))
