"""E3DLSTM: a small predictive network of Eidetic 3D LSTM layers (Wang et al. 2019)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import torch
import torch.nn as nn

from medst.networks.blocks.e3d_lstm import E3DLSTMStack
from medst.networks.layers.patch import depth_to_space, space_to_depth
from medst.networks.nets.convrnn import RecurrentDirection
from medst.networks.registry import register_network

__all__ = ["E3DLSTM", "e3d_lstm_forecaster"]


class E3DLSTM(nn.Module):
    """Video prediction with Eidetic 3D LSTMs: Wang et al. 2019, "Eidetic 3D LSTM: A Model for Video Prediction and
    Beyond", ICLR 2019, https://openreview.net/forum?id=B1lKS2AqtX.

    Frames are cut into patches (space-to-depth, as in the paper's and OpenSTL's code), each step sees a window of the
    last ``window`` frames through 3D convolutions inside the recurrence, each layer recalls from its last ``tau``
    memories with attention, and the spatio-temporal memory M zigzags through the layers. After the ``T_in``
    observed frames, the network feeds its own predictions back for the next ``T_out - 1`` steps. The loop over
    time is ConvRNN's :class:`RecurrentDirection`; :class:`~medst.networks.blocks.e3d_lstm.E3DLSTMStack` is the step.

    Args:
        spatial_dims: 2 (video frames; the 3D convolutions run over (window, H, W)).
        in_channels: frame channels.
        hidden_channels: widths of the layers (all equal, since M passes between them).
        output_frames: T_out.
        window: frames per input window (tau' in the paper; 2 in the reference code).
        tau: past memories recalled per layer.
        kernel_size: odd 3D kernel size of the gate convolutions.
        patch_size: space-to-depth factor.

    Shapes: (B, C, T_in, H, W) -> (B, C, T_out, H, W); H and W divisible by ``patch_size``.

    Example::

        net = E3DLSTM(2, 1, hidden_channels=(64, 64), output_frames=10, patch_size=4)
        y = net(torch.rand(2, 1, 10, 64, 64))   # (2, 1, 10, 64, 64)
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        hidden_channels: Sequence[int] = (64, 64),
        output_frames: int = 10,
        window: int = 2,
        tau: int = 5,
        kernel_size: int = 3,
        patch_size: int = 4,
    ) -> None:
        super().__init__()
        if spatial_dims != 2:
            raise ValueError(f"E3DLSTM works on video frames (spatial_dims=2; 3D convs over window x H x W), got {spatial_dims}.")
        if output_frames < 1:
            raise ValueError(f"output_frames must be >= 1, got {output_frames}.")
        if patch_size < 1:
            raise ValueError(f"patch_size must be >= 1, got {patch_size}.")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.output_frames = output_frames
        self.patch_size = patch_size
        self.supports_streaming = False
        c = in_channels * patch_size**2
        self.rnn = RecurrentDirection(E3DLSTMStack(c, list(hidden_channels), window, kernel_size, tau), batched_input=False)

    def forward(
        self, x: torch.Tensor, state: list[torch.Tensor] | None = None, return_state: bool = False
    ) -> Union[torch.Tensor, tuple[torch.Tensor, list[torch.Tensor]]]:  # noqa: UP007  (TorchScript)
        """x: (B, C, T_in, H, W) -> (B, C, T_out, H, W) [, the state after the last forecast step]."""
        if x.dim() != 5:
            raise ValueError(f"expected input (B, C, T, H, W), got shape {list(x.shape)}.")
        b, c, t = x.shape[0], x.shape[1], x.shape[2]
        frames = space_to_depth(x.transpose(1, 2).reshape([b * t, c] + list(x.shape[3:])), self.patch_size)
        spatial = list(frames.shape[2:])
        frames = frames.view([b, t, frames.shape[1]] + spatial)
        observed = torch.cat([torch.ones_like(frames[:, :, :1]), frames], 2)
        n_free = self.output_frames - 1
        free = torch.zeros([b, n_free, observed.shape[2]] + spatial, dtype=x.dtype, device=x.device)
        preds, new_state = self.rnn(torch.cat([observed, free], 1), state)
        preds = preds[:, t - 1 :]  # step t-1 predicts frame t
        y = depth_to_space(preds.reshape([b * self.output_frames, preds.shape[2]] + spatial), self.patch_size)
        y = y.view([b, self.output_frames, c] + list(y.shape[2:])).transpose(1, 2)
        if return_state:
            return y, new_state
        return y


@register_network(
    example_kwargs=dict(in_channels=1, hidden_channels=(4,), output_frames=2, patch_size=2, tau=2),
    example_input_shape=(1, 1, 3, 8, 8),
    example_output_shape=(1, 1, 2, 8, 8),
)
def e3d_lstm_forecaster(**kwargs: Any) -> E3DLSTM:
    """E3D-LSTM for Moving MNIST 64x64: 10 -> 10 frames, 4x4 patches, two 64-channel layers, window 2, tau 5."""
    defaults = dict(spatial_dims=2, in_channels=1, hidden_channels=(64, 64), output_frames=10, patch_size=4)
    return E3DLSTM(**dict(defaults, **kwargs))
