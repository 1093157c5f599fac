"""EncoderForecaster: the encoding-forecasting ConvLSTM network of Shi et al. 2015 for sequence prediction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import torch
import torch.nn as nn
from monai.networks.layers.factories import Conv

from medst.networks.layers.patch import depth_to_space, space_to_depth
from medst.networks.nets.convrnn import ConvRNN
from medst.networks.registry import register_network

__all__ = ["EncoderForecaster", "convlstm_forecaster", "convgru_forecaster"]


class EncoderForecaster(nn.Module):
    """Encoding-forecasting network of Shi et al. 2015, "Convolutional LSTM Network: A Machine Learning Approach for
    Precipitation Nowcasting", https://arxiv.org/abs/1506.04214: given ``T_in`` frames, predict the next ``T_out``.

    Each frame is first cut into ``patch_size`` x ``patch_size`` patches stacked on the channel axis
    (space-to-depth; Shi et al. used 4x4 patches on 64x64 Moving MNIST, as do PredRNN,
    https://github.com/thuml/predrnn-pytorch, and OpenSTL's ConvLSTM, https://arxiv.org/abs/2306.11249). An
    encoding ConvRNN reads the ``T_in`` patch frames; a forecasting ConvRNN with the same layer widths starts from
    the encoder's final states (layer l from layer l) and runs ``T_out`` steps without input (it is fed a zero frame,
    which contributes only the gate biases); the hidden states of *all* forecasting layers are concatenated and a
    1x1 convolution maps them to the output patches, which depth-to-space turns back into frames.

    Args:
        spatial_dims: 2 (video frames) or 3 (volumes).
        in_channels: channels of an input frame.
        out_channels: channels of a predicted frame (default: ``in_channels``).
        hidden_channels: hidden channels of each recurrent layer (encoder and forecaster alike).
        output_frames: ``T_out``.
        kernel_size: gate kernel size (Shi et al.: 5x5 for Moving MNIST; 3 is cheaper).
        cell: ``"lstm"`` or ``"gru"``.
        patch_size: space-to-depth factor (1: none); every spatial size must be divisible by it.
        peephole: per-channel peephole connections (LSTM; the paper's model has peepholes).
        output_act: None (regression; train with MSE) or ``"sigmoid"`` (intensities in [0, 1]; the paper trains with
            cross-entropy on the sigmoid).

    Shapes: (B, C, T_in, *spatial) -> (B, C_out, T_out, *spatial).

    State: ``forward(x, state, return_state=True)`` returns the *encoder's* state after reading ``x``; passing it back
    with the next frames continues the observation (the prediction always starts from the newest state).

    Example::

        net = EncoderForecaster(2, 1, hidden_channels=(64, 64), output_frames=10, patch_size=4)
        y = net(torch.rand(8, 1, 10, 64, 64))   # (8, 1, 10, 64, 64)
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int | None = None,
        hidden_channels: Sequence[int] = (64, 64),
        output_frames: int = 10,
        kernel_size: int = 3,
        cell: str = "lstm",
        patch_size: int = 4,
        peephole: bool = False,
        output_act: str | None = None,
    ) -> None:
        super().__init__()
        hidden = list(hidden_channels)
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 (video frames) or 3 (volumes), got {spatial_dims}.")
        if output_frames < 1:
            raise ValueError(f"output_frames must be >= 1, got {output_frames}.")
        if patch_size < 1:
            raise ValueError(f"patch_size must be >= 1, got {patch_size}.")
        if len(hidden) < 1:
            raise ValueError("hidden_channels must list at least one layer, e.g. (64, 64).")
        if output_act not in (None, "sigmoid"):
            raise ValueError(f"output_act must be None or 'sigmoid', got {output_act!r}.")
        out_channels = in_channels if out_channels is None else out_channels
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.output_frames = output_frames
        self.patch_size = patch_size
        self.sigmoid = output_act == "sigmoid"
        self.supports_streaming = False  # the output is T_out future frames, not one output per input frame
        p = patch_size**spatial_dims
        common: dict[str, Any] = dict(kernel_size=kernel_size, cell=cell, peephole=peephole)
        self.encoder = ConvRNN(spatial_dims, in_channels * p, hidden, **common)
        self.forecaster = ConvRNN(spatial_dims, 1, hidden, **common)
        self.head = Conv[Conv.CONV, spatial_dims](sum(hidden), out_channels * p, kernel_size=1)

    def forward(
        self, x: torch.Tensor, state: list[torch.Tensor] | None = None, return_state: bool = False
    ) -> Union[torch.Tensor, tuple[torch.Tensor, list[torch.Tensor]]]:  # noqa: UP007  (TorchScript)
        """x: (B, C, T_in, *spatial) -> (B, C_out, T_out, *spatial) [, encoder state]."""
        if x.dim() != self.spatial_dims + 3:
            raise ValueError(
                f"expected input (B, C, T, *spatial) with {self.spatial_dims} spatial dims, got shape {list(x.shape)}."
            )
        b, c, t = x.shape[0], x.shape[1], x.shape[2]
        frames = x.transpose(1, 2).reshape([b * t, c] + list(x.shape[3:]))
        patches = space_to_depth(frames, self.patch_size)
        spatial = list(patches.shape[2:])
        _, enc_state = self.encoder.forward_frames(patches.view([b, t, patches.shape[1]] + spatial), state)
        # the forecaster: no input (a zero frame), its layers start from the encoder's layers' states
        h = torch.zeros([b, self.output_frames, 1] + spatial, dtype=x.dtype, device=x.device)
        outs: list[torch.Tensor] = []
        i = 0
        for layer in self.forecaster.layers:
            h, _ = layer(h, enc_state[i : i + layer.num_states])
            i += layer.num_states
            outs.append(h)
        feats = torch.cat(outs, 2)
        feats = feats.reshape([b * self.output_frames, feats.shape[2]] + spatial)
        y = depth_to_space(self.head(feats), self.patch_size)
        if self.sigmoid:
            y = torch.sigmoid(y)
        y = y.view([b, self.output_frames, self.out_channels] + list(y.shape[2:])).transpose(1, 2)
        if return_state:
            return y, enc_state
        return y


# a small example configuration of a 2D forecaster (registry tests: 4 frames of 8x8 in, the next 3 out)
FORECASTER_EXAMPLE: dict[str, Any] = dict(
    example_kwargs=dict(in_channels=1, hidden_channels=(4, 4), output_frames=3, patch_size=2),
    example_input_shape=(2, 1, 4, 8, 8),
    example_output_shape=(2, 1, 3, 8, 8),
)


@register_network(**FORECASTER_EXAMPLE)
def convlstm_forecaster(**kwargs: Any) -> EncoderForecaster:
    """Shi 2015 encoder-forecaster for Moving MNIST 64x64: 10 -> 10 frames, 4x4 patches, two 64-channel ConvLSTMs."""
    defaults = dict(spatial_dims=2, in_channels=1, hidden_channels=(64, 64), output_frames=10, patch_size=4, cell="lstm")
    return EncoderForecaster(**dict(defaults, **kwargs))


@register_network(**FORECASTER_EXAMPLE)
def convgru_forecaster(**kwargs: Any) -> EncoderForecaster:
    """The same encoder-forecaster with ConvGRU cells."""
    defaults = dict(spatial_dims=2, in_channels=1, hidden_channels=(64, 64), output_frames=10, patch_size=4, cell="gru")
    return EncoderForecaster(**dict(defaults, **kwargs))
