"""A small stateful convolutional recurrent network for the inferer tests (h_t = tanh(W x_t + U h_{t-1}))."""

from __future__ import annotations

import torch
from torch import nn


class TinyConvRNN(nn.Module):
    """Convolutional Elman recurrence over (B, C, T, *spatial), with the streaming contract of medst networks.

    The state is nested (``((h,),)``) on purpose, to exercise the inferers' handling of nested states.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, hidden: int = 4,
                 supports_streaming: bool = True) -> None:
        super().__init__()
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.hidden = hidden
        self.x2h = conv(in_channels, hidden, 3, padding=1)
        self.h2h = conv(hidden, hidden, 3, padding=1, bias=False)
        self.head = conv(hidden, out_channels, 1)
        self.out_channels = out_channels
        self.supports_streaming = supports_streaming

    def forward(self, x: torch.Tensor, state=None, return_state: bool = False):
        b, _, t, *spatial = x.shape
        h = state[0][0] if state is not None else x.new_zeros((b, self.hidden, *spatial))
        outs = []
        for i in range(t):
            h = torch.tanh(self.x2h(x[:, :, i]) + self.h2h(h))
            outs.append(self.head(h))
        y = torch.stack(outs, 2)
        return (y, ((h,),)) if return_state else y
