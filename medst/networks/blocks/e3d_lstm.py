"""Eidetic 3D LSTM (E3D-LSTM) cells of Wang et al. 2019, and a stack of them that advances one time step.

Wang, Jiang, Yang, Li, Long, Fei-Fei, "Eidetic 3D LSTM: A Model for Video Prediction and Beyond", ICLR 2019,
https://openreview.net/forum?id=B1lKS2AqtX.

An E3D-LSTM layer works on short windows of frames, ``(B, C, tau', H, W)`` (3D convolutions inside the recurrence),
keeps the last ``tau`` memories ``C_{t-tau:t-1}`` and recalls from them with attention:

- ``R, I, G = s/s/tanh(W_x * X + W_h * H_{t-1})``
- ``RECALL = softmax(R . C_hist^T) . C_hist`` (over all positions and all ``tau`` past memories)
- ``C_t = I.G + Norm(C_{t-1} + RECALL)``
- ``M_t = I'.G' + F'.M`` with ``I', G', F'`` from ``X`` and the spatio-temporal memory ``M`` (which flows from the
  layer below at the same step, and from the top layer of the previous step to the bottom layer, as in PredRNN)
- ``O = s(W_x * X + W_h * H_{t-1} + W_cm * [C_t, M_t])``, ``H_t = O . tanh(W_1x1 * [C_t, M_t])``.

The paper's LayerNorm over (C, tau', H, W) would fix the image size; here it is GroupNorm with one group (the same
normalisation, with per-channel instead of per-element affine weights), so the cell runs on any frame size.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from medst.networks.blocks.recurrent_cells import RecurrentStepBase

__all__ = ["E3DLSTMCell", "E3DLSTMStack"]


class E3DLSTMCell(nn.Module):
    """One E3D-LSTM layer (see the module docstring).

    Args:
        in_channels: channels of the input window X.
        hidden_channels: H.
        kernel_size: odd kernel size of the 3D gate convolutions (over tau', H, W).
        tau: number of past memories the recall attends to.

    Shapes: X (B, C, tau', h, w); state tensors (B, H, tau', h, w), the memory history (B, tau, H, tau', h, w).
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3, tau: int = 5) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}.")
        if tau < 1:
            raise ValueError(f"tau (memories recalled) must be >= 1, got {tau}.")
        p = kernel_size // 2
        hc = hidden_channels
        self.hidden_channels = hc
        self.tau = tau
        self.conv_x = nn.Conv3d(in_channels, 7 * hc, kernel_size, padding=p)  # r i g | i' g' f' | o
        self.conv_h = nn.Conv3d(hc, 4 * hc, kernel_size, padding=p, bias=False)  # r i g o
        self.conv_m = nn.Conv3d(hc, 3 * hc, kernel_size, padding=p, bias=False)  # i' g' f'
        self.conv_o = nn.Conv3d(2 * hc, hc, kernel_size, padding=p, bias=False)
        self.conv_1x1 = nn.Conv3d(2 * hc, hc, 1)
        self.norm_c = nn.GroupNorm(1, hc)

    def recall(self, r: torch.Tensor, c_hist: torch.Tensor) -> torch.Tensor:
        """softmax(R . C_hist^T) . C_hist: r (B, H, *S), c_hist (B, tau, H, *S) -> (B, H, *S)."""
        b, hc = r.shape[0], r.shape[1]
        q = r.flatten(2).transpose(1, 2)  # (B, N, H)
        kv = c_hist.transpose(1, 2).flatten(2).transpose(1, 2)  # (B, tau * N, H)
        attn = torch.softmax(torch.bmm(q, kv.transpose(1, 2)), dim=2)
        return torch.bmm(attn, kv).transpose(1, 2).reshape(r.shape)

    def forward(
        self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, c_hist: torch.Tensor, m: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step: returns (h, c, c_hist, m), the history shifted by one with c appended."""
        hc = self.hidden_channels
        gx = self.conv_x(x)
        gh = self.conv_h(h)
        gm = self.conv_m(m)
        r = torch.sigmoid(gx[:, :hc] + gh[:, :hc])
        i = torch.sigmoid(gx[:, hc : 2 * hc] + gh[:, hc : 2 * hc])
        g = torch.tanh(gx[:, 2 * hc : 3 * hc] + gh[:, 2 * hc : 3 * hc])
        c_new = i * g + self.norm_c(c + self.recall(r, c_hist))
        i2 = torch.sigmoid(gx[:, 3 * hc : 4 * hc] + gm[:, :hc])
        g2 = torch.tanh(gx[:, 4 * hc : 5 * hc] + gm[:, hc : 2 * hc])
        f2 = torch.sigmoid(gx[:, 5 * hc : 6 * hc] + gm[:, 2 * hc :])
        m_new = i2 * g2 + f2 * m
        mem = torch.cat([c_new, m_new], 1)
        o = torch.sigmoid(gx[:, 6 * hc :] + gh[:, 3 * hc :] + self.conv_o(mem))
        h_new = o * torch.tanh(self.conv_1x1(mem))
        c_hist = torch.cat([c_hist[:, 1:], c_new.unsqueeze(1)], 1)
        return h_new, c_new, c_hist, m_new


class E3DLSTMStack(RecurrentStepBase):
    """A stack of E3D-LSTM layers with a frame-window buffer and a next-frame head, advancing ONE time step.

    It has the interface of a :class:`~medst.networks.blocks.ConvRNNCellBase` cell, so that
    :class:`~medst.networks.nets.convrnn.RecurrentDirection` (the loop over time of ConvRNN) unrolls it.

    Each step's input is one frame with a leading flag channel: ``[flag, frame]``, (B, 1 + C, h, w). With flag 1
    the frame is observed; with flag 0 the stack uses its own previous prediction instead (autoregressive
    forecasting, as in the paper). The frame enters a window of the last ``window`` frames (B, C, window, h, w),
    the layers advance, and a 3D convolution over the whole window maps the top hidden state to the prediction of
    the next frame (B, C, h, w), which is the step's output.

    State (flat list): ``[window, last_prediction, m, h_1, c_1, c_hist_1, ..., h_L, c_L, c_hist_L]``.
    """

    def __init__(
        self, in_channels: int, hidden_channels: list[int], window: int = 2, kernel_size: int = 3, tau: int = 5
    ) -> None:
        super().__init__()
        if window < 1:
            raise ValueError(f"window (frames per E3D input) must be >= 1, got {window}.")
        if len(hidden_channels) < 1 or len(set(hidden_channels)) != 1:
            raise ValueError(
                f"hidden_channels must be one or more equal widths (M flows between layers), got {hidden_channels}."
            )
        self.in_channels = in_channels + 1  # the flag channel
        self.frame_channels = in_channels
        self.hidden_channels = hidden_channels[0]
        self.window = window
        self.tau = tau
        self.spatial_dims = 2
        cells = []
        c = in_channels
        for h in hidden_channels:
            cells.append(E3DLSTMCell(c, h, kernel_size, tau))
            c = h
        self.cells = nn.ModuleList(cells)
        self.head = nn.Conv3d(hidden_channels[-1], in_channels, kernel_size=(window, 1, 1))
        self.num_layers = len(hidden_channels)
        self.num_states = 3 + 3 * len(hidden_channels)

    def init_state(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Zero state for a step input x (B, 1 + C, h, w)."""
        b, hh, ww = x.shape[0], x.shape[2], x.shape[3]
        hc = self.hidden_channels
        z = x.new_zeros
        state = [z([b, self.frame_channels, self.window, hh, ww]), z([b, self.frame_channels, hh, ww]), z([b, hc, self.window, hh, ww])]
        for _ in range(self.num_layers):
            state += [z([b, hc, self.window, hh, ww]), z([b, hc, self.window, hh, ww]), z([b, self.tau, hc, self.window, hh, ww])]
        return state

    def forward(self, x: torch.Tensor, state: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x: (B, 1 + C, h, w) -> (prediction of the next frame (B, C, h, w), new state)."""
        if state is None:
            state = self.init_state(x)
        flag = x[:, :1]
        frame = flag * x[:, 1:] + (1.0 - flag) * state[1]
        window = torch.cat([state[0][:, :, 1:], frame.unsqueeze(2)], 2)
        m = state[2]
        new_layers: list[torch.Tensor] = []
        inp = window
        k = 3
        for cell in self.cells:
            h, c, c_hist, m = cell(inp, state[k], state[k + 1], state[k + 2], m)
            new_layers += [h, c, c_hist]
            inp = h
            k += 3
        pred = self.head(inp).squeeze(2)
        return pred, [window, pred, m] + new_layers
