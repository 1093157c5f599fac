"""PredNet: a deep predictive coding network for next-frame prediction (Lotter et al. 2017)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.layers.factories import Conv, Pool

from medst.networks.blocks.recurrent_cells import ConvLSTMCell, RecurrentStepBase
from medst.networks.nets.convrnn import RecurrentDirection
from medst.networks.registry import register_network

__all__ = ["PredNetStack", "PredNet", "prednet"]


class PredNetStack(RecurrentStepBase):
    """One time step of PredNet's layer stack (the step that :class:`RecurrentDirection` walks over time).

    Layer ``l`` holds a representation ``R_l`` (a ConvLSTM), a prediction ``Ahat_l = ReLU(conv(R_l))`` of its input
    ``A_l`` and an error ``E_l = [ReLU(A_l - Ahat_l), ReLU(Ahat_l - A_l)]``. A step first updates the ``R_l`` top-down
    (``R_l`` reads ``E_l`` of the previous step and the upsampled new ``R_{l+1}``), then runs bottom-up: ``A_0`` is
    the frame, ``A_{l+1} = MaxPool(ReLU(conv(E_l)))``. So ``Ahat_0`` of step ``t`` is the prediction of frame ``t``
    made from frames ``< t``; it is the step's output (clipped to ``[0, pixel_max]``, the paper's SatLU).

    Each step's input is a frame with a leading flag channel, ``[flag, frame]`` (B, 1 + C, *spatial): with flag 1
    the frame is observed; with flag 0 the stack takes its own prediction as the frame (extrapolation).

    State (flat list): ``[last prediction, R_0, C_0, E_0, ..., R_{L-1}, C_{L-1}, E_{L-1}]``.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        a_channels: list[int],
        r_channels: list[int],
        kernel_size: int = 3,
        pixel_max: float = 1.0,
    ) -> None:
        super().__init__()
        if len(a_channels) != len(r_channels) or len(a_channels) < 1:
            raise ValueError(
                f"a_channels and r_channels need one entry per layer, got {len(a_channels)} and {len(r_channels)}."
            )
        if a_channels[0] != in_channels:
            raise ValueError(f"a_channels[0] is the frame's channels ({in_channels}), got {a_channels[0]}.")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels + 1  # the flag channel
        self.frame_channels = in_channels
        self.hidden_channels = in_channels  # the step's output: the predicted frame
        self.num_layers = len(a_channels)
        self.num_states = 1 + 3 * self.num_layers
        self.a_channels = list(a_channels)
        self.r_channels = list(r_channels)
        self.pixel_max = pixel_max
        conv = Conv[Conv.CONV, spatial_dims]
        n = self.num_layers
        # top layer first: the order in which a step updates them
        self.cells = nn.ModuleList(
            ConvLSTMCell(spatial_dims, 2 * a_channels[i] + (r_channels[i + 1] if i + 1 < n else 0), r_channels[i],
                         kernel_size)
            for i in reversed(range(n))
        )
        self.a_hat = nn.ModuleList(conv(r_channels[i], a_channels[i], kernel_size, padding=kernel_size // 2)
                                   for i in range(n))
        self.a_next = nn.ModuleList(conv(2 * a_channels[i], a_channels[i + 1], kernel_size, padding=kernel_size // 2)
                                    for i in range(n - 1))
        self.pool = Pool[Pool.MAX, spatial_dims](kernel_size=2)

    def init_state(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Zero state for a step input x (B, 1 + C, *spatial)."""
        b = x.shape[0]
        spatial = list(x.shape[2:])
        state = [x.new_zeros([b, self.frame_channels] + spatial)]
        for i in range(self.num_layers):
            size = [s >> i for s in spatial]  # s // 2**i (an int in TorchScript)
            h = x.new_zeros([b, self.r_channels[i]] + size)
            state += [h, torch.zeros_like(h), x.new_zeros([b, 2 * self.a_channels[i]] + size)]
        return state

    def forward(self, x: torch.Tensor, state: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x: (B, 1 + C, *spatial) -> (prediction of this frame (B, C, *spatial), new state)."""
        if state is None:
            state = self.init_state(x)
        flag = x[:, :1]
        n = self.num_layers
        # top-down: R_l from E_l of the previous step and the new R_{l+1}
        rs: list[torch.Tensor] = []
        cs: list[torch.Tensor] = []
        r_above = state[0]  # placeholder, unused for the top layer
        for j, cell in enumerate(self.cells):
            i = n - 1 - j
            inp = state[3 + 3 * i]
            if i < n - 1:
                inp = torch.cat([inp, F.interpolate(r_above, scale_factor=2.0, mode="nearest")], 1)
            r, st = cell(inp, [state[1 + 3 * i], state[2 + 3 * i]])
            rs.insert(0, r)
            cs.insert(0, st[1])
            r_above = r
        # bottom-up: predictions and errors
        pred = state[0]
        a = x[:, 1:]
        new_state: list[torch.Tensor] = []
        for i, conv in enumerate(self.a_hat):
            a_hat = torch.relu(conv(rs[i]))
            if i == 0:
                a_hat = torch.clamp(a_hat, max=self.pixel_max)
                pred = a_hat
                a = flag * a + (1.0 - flag) * a_hat  # extrapolation: the prediction stands in for the frame
            e = torch.cat([torch.relu(a - a_hat), torch.relu(a_hat - a)], 1)
            new_state += [rs[i], cs[i], e]
            for k, down in enumerate(self.a_next):
                if k == i:
                    a = self.pool(torch.relu(down(e)))
        return pred, [pred] + new_state


class PredNet(nn.Module):
    """PredNet of Lotter, Kreiman and Cox 2017, "Deep Predictive Coding Networks for Video Prediction and Unsupervised
    Learning", ICLR 2017, https://arxiv.org/abs/1605.08104.

    A stack of ConvLSTM representation units, each predicting its layer's input and passing up only its prediction
    error (see :class:`PredNetStack`). The loop over time is ConvRNN's :class:`RecurrentDirection`.

    Args:
        spatial_dims: 2 (video frames) or 3 (volumes of a 4D scan).
        in_channels: frame channels (A_0).
        channels: channels of A_l and Ahat_l for the layers above the frame (the paper's KITTI model: 48, 96, 192).
        r_channels: channels of the representations R_l, one per layer including layer 0 (default: the frame's
            channels, then ``channels``, as in the paper).
        output_frames: 0: output the next-frame prediction of every input frame (B, C, T, *spatial); N > 0: after the
            input, extrapolate N frames by feeding predictions back, and output those (B, C, N, *spatial).
        kernel_size: odd kernel size of every convolution (3 in the paper).
        pixel_max: the predictions are clipped to ``[0, pixel_max]`` (inputs on ``[0, 1]`` by default).

    Shapes: (B, C, T, *spatial) -> (B, C, T or output_frames, *spatial); every spatial size divisible by
    ``2 ** len(channels)``. Prediction ``t`` of the first mode is made from frames ``< t`` (frame 0's is from nothing).
    Train with the mean of the layer-0 error, or with MSE against the frames (the paper's "L_0" loss).

    Example::

        net = PredNet(2, 3, channels=(48, 96, 192))
        y = net(torch.rand(1, 3, 10, 128, 160))   # (1, 3, 10, 128, 160): y[:, :, t] predicts frame t
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        channels: Sequence[int] = (48, 96, 192),
        r_channels: Sequence[int] | None = None,
        output_frames: int = 0,
        kernel_size: int = 3,
        pixel_max: float = 1.0,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 (video frames) or 3 (volumes), got {spatial_dims}.")
        if output_frames < 0:
            raise ValueError(f"output_frames must be >= 0, got {output_frames}.")
        a = [in_channels] + list(channels)
        r = list(r_channels) if r_channels is not None else list(a)
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.output_frames = output_frames
        self.factor = 2 ** (len(a) - 1)
        self.supports_streaming = output_frames == 0
        self.rnn = RecurrentDirection(PredNetStack(spatial_dims, in_channels, a, r, kernel_size, pixel_max),
                                      batched_input=False)

    def forward(
        self, x: torch.Tensor, state: list[torch.Tensor] | None = None, return_state: bool = False
    ) -> Union[torch.Tensor, tuple[torch.Tensor, list[torch.Tensor]]]:  # noqa: UP007  (TorchScript)
        """x: (B, C, T, *spatial) -> predictions (B, C, T or output_frames, *spatial) [, the final state]."""
        if x.dim() != self.spatial_dims + 3:
            raise ValueError(f"expected input (B, C, T, *spatial) with {self.spatial_dims} spatial dims, got "
                             f"shape {list(x.shape)}.")
        for s in x.shape[3:]:
            if s % self.factor != 0:
                raise ValueError(f"every spatial size must be divisible by {self.factor}, got {list(x.shape[3:])}.")
        b, t = x.shape[0], x.shape[2]
        frames = x.transpose(1, 2)  # (B, T, C, *spatial)
        steps = torch.cat([torch.ones_like(frames[:, :, :1]), frames], 2)
        if self.output_frames > 0:
            free = torch.zeros([b, self.output_frames] + list(steps.shape[2:]), dtype=x.dtype, device=x.device)
            steps = torch.cat([steps, free], 1)
        preds, new_state = self.rnn(steps.contiguous(), state)
        if self.output_frames > 0:
            preds = preds[:, t:]
        y = preds.transpose(1, 2)
        if return_state:
            return y, new_state
        return y


@register_network(
    example_kwargs=dict(in_channels=1, channels=(4, 8), r_channels=(2, 4, 8)),
    example_input_shape=(1, 1, 3, 8, 8),
    example_output_shape=(1, 1, 3, 8, 8),
)
def prednet(**kwargs: Any) -> PredNet:
    """PredNet (Lotter 2017), KITTI configuration of the paper: RGB, A/R channels (3, 48, 96, 192), 3x3 kernels."""
    defaults = dict(spatial_dims=2, in_channels=3, channels=(48, 96, 192))
    return PredNet(**dict(defaults, **kwargs))
