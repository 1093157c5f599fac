"""CompositeLSTM: the LSTM encoder-decoder video autoencoder of Srivastava et al. 2015 (the "composite model").

Srivastava N., Mansimov E., Salakhutdinov R., "Unsupervised Learning of Video Representations using LSTMs",
ICML 2015, https://arxiv.org/abs/1502.04681: one encoder LSTM reads the input frames; its final state is copied into
two decoder LSTMs, one that reconstructs the input frames in reverse order and one that predicts the future frames.
Each decoder is conditional (it reads the frame it generated last) or unconditioned (no input). The paper's model is
fully connected on flattened frames; the convolutional variant uses medst's ConvLSTM cells on patch frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import torch
import torch.nn as nn

from medst.networks.blocks.recurrent_cells import get_cell_class
from medst.networks.layers.patch import depth_to_space, space_to_depth
from medst.networks.nets.convrnn import ConvRNN
from medst.networks.nets.encoder_forecaster import FORECASTER_EXAMPLE
from medst.networks.nets.motion_forecaster import check_frame_predictor_args
from medst.networks.registry import register_network

__all__ = [
    "CompositeDecoder",
    "CompositeLSTM",
    "composite_lstm_fc_srivastava",
    "composite_lstm_fc_small",
    "composite_convlstm_small",
]


class CompositeDecoder(nn.Module):
    """One decoder of the composite model: a stack of recurrent cells started from the encoder's state, and a 1x1
    read-out of its layers' concatenated hidden states to one frame's features (logits) per step.

    Args:
        spatial_dims: 1 (fully connected: features on a length-1 axis) or 2 (patch frames).
        features: feature channels of one frame (what the read-out produces).
        hidden_channels: hidden channels of each layer (those of the encoder, whose state it starts from).
        kernel_size: gate kernel size (1 for the fully connected model).
        cell: ``"lstm"`` or ``"gru"``.
        conditional: read the frame generated at the previous step (a zero frame at the first); otherwise the input
            is one constant zero channel, which contributes only the gate biases.
    """

    def __init__(
        self,
        spatial_dims: int,
        features: int,
        hidden_channels: Sequence[int],
        kernel_size: int,
        cell: str,
        conditional: bool,
    ) -> None:
        super().__init__()
        cell_cls = get_cell_class(cell)
        self.conditional = conditional
        cells = []
        cin = features if conditional else 1
        for h in hidden_channels:
            cells.append(cell_cls(spatial_dims, cin, h, kernel_size=kernel_size))
            cin = h
        self.cells = nn.ModuleList(cells)
        conv = nn.Conv1d if spatial_dims == 1 else nn.Conv2d
        self.head = conv(sum(hidden_channels), features, kernel_size=1)

    def forward(self, state: list[torch.Tensor], steps: int, like: torch.Tensor) -> torch.Tensor:
        """state: the encoder's flat state list; like: one frame's features (B, F, *s) (shape, dtype, device).

        Returns:
            the logits of ``steps`` generated frames' features (B, steps, F, *s).
        """
        states = list(state)
        if self.conditional:
            inp = torch.zeros_like(like)
        else:
            inp = torch.zeros([like.shape[0], 1] + list(like.shape[2:]), dtype=like.dtype, device=like.device)
        outs: list[torch.Tensor] = []
        for _ in range(steps):
            z = inp
            hs: list[torch.Tensor] = []
            i = 0
            for cell in self.cells:
                n = cell.num_states
                z, st = cell(z, states[i : i + n])
                states = states[:i] + st + states[i + n :]
                i += n
                hs.append(z)
            y = self.head(torch.cat(hs, 1))
            outs.append(y)
            if self.conditional:
                inp = torch.sigmoid(y)
        return torch.stack(outs, 1)


class CompositeLSTM(nn.Module):
    """The composite LSTM autoencoder of Srivastava et al. 2015, https://arxiv.org/abs/1502.04681: given ``T_in``
    frames, predict the next ``output_frames`` (and, for the composite loss, reconstruct the input).

    An encoder (a :class:`ConvRNN`) reads the frames; both decoders (:class:`CompositeDecoder`) start from its final
    state (layer l from layer l). The future decoder generates ``output_frames`` frames; the reconstruction decoder
    generates the input frames *in reverse order* (the last input frame first), as in the paper. Outputs are
    sigmoids (intensities on [0, 1]; the paper trains with cross-entropy on logistic outputs).

    - ``fully_connected=True`` (the paper's model): each frame is flattened to ``C * H * W`` features (``frame_size``
      fixes H and W) and the cells are fully connected LSTMs (medst's cells with a kernel of 1 on a length-1 axis,
      which is exactly a fully connected LSTM with one bias per gate); the read-outs are linear maps.
    - ``fully_connected=False``: frames cut into ``patch_size`` patches (space-to-depth, as
      :class:`EncoderForecaster`) and ConvLSTM cells of ``kernel_size``; any frame size divisible by ``patch_size``.

    Args:
        spatial_dims: 2 (video frames).
        in_channels: channels of a frame (predicted frames have the same).
        hidden_channels: hidden units (fully connected) or channels (convolutional) of each layer; the encoder and
            both decoders have the same layers.
        output_frames: how many future frames to predict.
        kernel_size: gate kernel size of the convolutional variant (the fully connected one uses 1).
        cell: ``"lstm"`` (the paper) or ``"gru"``.
        patch_size: space-to-depth factor of the convolutional variant (must be 1 when fully connected).
        fully_connected: the paper's fully connected model (True) or the convolutional variant (False).
        frame_size: (H, W) of the frames, required when fully connected (the first layer's size depends on it).
        conditional: conditional decoders (each reads the frame it generated last) or unconditioned ones.

    Shapes: (B, C, T_in, H, W) -> (B, C, output_frames, H, W). ``forward(x, return_context=True)`` returns
    ``T_in - 1 + output_frames`` frames: the *reconstructions* of input frames 2..T_in (in time order), then the
    forecast, the layout of :class:`MotionForecaster`'s context outputs, so that the prediction bundle's trainer (a
    target at every frame after the first) trains the composite loss unchanged (less frame 1's reconstruction).
    ``forward(x, return_reconstruction=True)`` returns ``(y, reconstruction)`` with the reconstruction of all
    ``T_in`` input frames in time order (B, C, T_in, H, W).

    Example::

        net = CompositeLSTM(2, 1, hidden_channels=(64, 64), output_frames=10, patch_size=8)
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
        fully_connected: bool = False,
        frame_size: Sequence[int] | None = None,
        conditional: bool = False,
    ) -> None:
        super().__init__()
        hidden = list(hidden_channels)
        check_frame_predictor_args("CompositeLSTM", spatial_dims, in_channels, hidden, output_frames, patch_size)
        if fully_connected:
            if frame_size is None or len(frame_size) != 2 or min(frame_size) < 1:
                raise ValueError(f"fully_connected=True needs frame_size=(H, W) (e.g. (64, 64)), got {frame_size}.")
            if patch_size != 1:
                raise ValueError(
                    f"patch_size must be 1 when fully_connected=True (frames are flattened), got {patch_size}."
                )
            features = in_channels * int(frame_size[0]) * int(frame_size[1])
            dims, k = 1, 1
        else:
            features = in_channels * patch_size * patch_size
            dims, k = 2, kernel_size
        self.in_channels = in_channels
        self.output_frames = output_frames
        self.patch_size = patch_size
        self.fully_connected = fully_connected
        self.frame_size = [int(s) for s in frame_size] if frame_size is not None else [0, 0]
        self.supports_streaming = False  # the output is future frames, not one output per input frame
        self.encoder = ConvRNN(dims, features, hidden, kernel_size=k, cell=cell)
        self.reconstructor = CompositeDecoder(dims, features, hidden, k, cell, conditional)
        self.predictor = CompositeDecoder(dims, features, hidden, k, cell, conditional)

    def _features(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, F, 1) flattened, or (N, F, H / p, W / p) patches."""
        if self.fully_connected:
            if list(frames.shape[2:]) != self.frame_size:
                raise ValueError(
                    f"this fully connected model takes frames of {self.frame_size}, got {list(frames.shape[2:])}."
                )
            return frames.reshape(frames.shape[0], -1, 1)
        return space_to_depth(frames, self.patch_size)

    def _frames(self, feats: torch.Tensor, b: int, h: int, w: int) -> torch.Tensor:
        """Logits (B, T, F, *s) -> frames (B, C, T, H, W) on [0, 1]."""
        t = feats.shape[1]
        f = feats.reshape([b * t] + list(feats.shape[2:]))
        if self.fully_connected:
            y = f.reshape(b * t, self.in_channels, h, w)
        else:
            y = depth_to_space(f, self.patch_size)
        return torch.sigmoid(y).view(b, t, self.in_channels, h, w).transpose(1, 2)

    def forward(
        self, x: torch.Tensor, return_context: bool = False, return_reconstruction: bool = False
    ) -> Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:  # noqa: UP007  (TorchScript)
        """x: (B, C, T_in, H, W) on [0, 1] -> the next ``output_frames`` frames (B, C, T_out, H, W); see the class
        docstring for ``return_context`` and ``return_reconstruction``."""
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected frames (B, {self.in_channels}, T, H, W), got shape {list(x.shape)} (2D frames only)."
            )
        b, t_in, h, w = x.shape[0], x.shape[2], x.shape[3], x.shape[4]
        feats = self._features(x.transpose(1, 2).reshape([b * t_in, self.in_channels, h, w]))
        feats = feats.view([b, t_in] + list(feats.shape[1:]))
        _, state = self.encoder.forward_frames(feats)
        y = self._frames(self.predictor(state, self.output_frames, feats[:, 0]), b, h, w)
        if not (return_context or return_reconstruction):
            return y
        recon = self._frames(self.reconstructor(state, t_in, feats[:, 0]), b, h, w).flip(2)  # back to time order
        if return_context:
            y = torch.cat([recon[:, :, 1:], y], 2)
        if return_reconstruction:
            return y, recon
        return y


# the registry's example for the fully connected model: the forecaster example (8x8 frames), flattened
_FC_EXAMPLE: dict[str, Any] = dict(
    FORECASTER_EXAMPLE,
    example_kwargs=dict(in_channels=1, hidden_channels=(6,), output_frames=3, frame_size=(8, 8)),
)


@register_network(**_FC_EXAMPLE)
def composite_lstm_fc_srivastava(**kwargs: Any) -> CompositeLSTM:
    """Srivastava 2015's composite model for Moving MNIST: 64x64 frames flattened, one 2048-unit LSTM per part."""
    defaults = dict(
        in_channels=1, hidden_channels=(2048,), output_frames=10, fully_connected=True, frame_size=(64, 64),
        patch_size=1, conditional=False,
    )
    return CompositeLSTM(**dict(defaults, **kwargs))


@register_network(**_FC_EXAMPLE)
def composite_lstm_fc_small(**kwargs: Any) -> CompositeLSTM:
    """The fully connected composite model at CPU size: 64x64 frames flattened, 512-unit LSTMs."""
    return composite_lstm_fc_srivastava(**dict(dict(hidden_channels=(512,)), **kwargs))


@register_network(**FORECASTER_EXAMPLE)
def composite_convlstm_small(**kwargs: Any) -> CompositeLSTM:
    """The convolutional composite model: two 64-channel ConvLSTMs on 8x8 patches of 64x64 frames (10 -> 10)."""
    defaults = dict(in_channels=1, hidden_channels=(64, 64), output_frames=10, patch_size=8, kernel_size=3)
    return CompositeLSTM(**dict(defaults, **kwargs))
