"""ConvRNN: a stacked convolutional recurrent network unrolled over time: the only loop over time in medst.

Input ``(B, C, T, *spatial)`` with time on axis 2 (video frames: ``spatial_dims=2``; volumes of a 4D scan:
``spatial_dims=3``). Layers run one after another over the whole sequence (layer-major), so each layer's
input-to-gate convolution runs as ONE batched call over ``B * T`` frames and only the hidden-to-gate convolution
stays in the loop (see :mod:`medst.networks.blocks.recurrent_cells`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import torch
import torch.nn as nn
from monai.networks.layers.factories import Conv

from medst.networks.blocks.recurrent_cells import ConvLSTMCell, ConvRNNCellBase, get_cell_class
from medst.networks.registry import register_network

__all__ = [
    "ConvRNN",
    "RecurrentLayer",
    "RecurrentDirection",
    "convlstm",
    "convgru",
    "convlstm_residual",
    "convlstm_bidirectional",
]


def _to_frames(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, *S) -> (B, T, C, *S), contiguous."""
    return x.transpose(1, 2).contiguous()


class RecurrentDirection(nn.Module):
    """One cell walked over a sequence in one direction: the loop over time.

    Works on sequences laid out ``(B, T, C, *spatial)`` (frames contiguous, so ``(B * T, C, *spatial)`` is a view).
    """

    def __init__(self, cell: ConvRNNCellBase, reverse: bool = False, batched_input: bool | None = None) -> None:
        super().__init__()
        self.cell = cell
        self.reverse = reverse
        self.batched_input = batched_input
        self.fused = True  # False: never the cell's fused path (the plain per-step loop, for comparisons)
        self.num_states = cell.num_states

    def forward(self, x: torch.Tensor, state: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x: (B, T, C, *spatial) -> ((B, T, H, *spatial), final state)."""
        b, t = x.shape[0], x.shape[1]
        spatial = list(x.shape[3:])
        if state is None:
            state = self.cell.init_state(x[:, 0])
        outs: list[torch.Tensor] = []
        steps = list(range(t))
        if self.reverse:
            steps.reverse()
        batched = x.is_cuda  # default; measured on CPUs, the per-step path is faster (see ConvRNN's docstring)
        choice = self.batched_input
        if choice is not None:
            batched = choice
        if not torch.jit.is_scripting():  # TorchScript does not compile this block
            if self._use_fused(x, batched):
                return self._forward_fused(x, state, steps)
        if batched:
            # every frame's input-to-gate convolution in one call; only the hidden part stays in the loop
            xg = self.cell.input_gates(x.reshape([b * t, x.shape[2]] + spatial))
            xg = xg.view([b, t, xg.shape[1]] + spatial)
            w_h = self.cell.hidden_weight()
            for i in steps:
                h, state = self.cell.step(xg[:, i], state, w_h)
                outs.append(h)
        else:
            for i in steps:
                h, state = self.cell(x[:, i], state)
                outs.append(h)
        if self.reverse:
            outs.reverse()
        return torch.stack(outs, 1), state

    def _use_fused(self, x: torch.Tensor, batched: bool) -> bool:
        """The cell's fused path: for inference (no autograd) on CPUs, unless the batched path was chosen."""
        return (
            self.fused
            and not batched
            and x.device.type == "cpu"
            and not (torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters())))
            and isinstance(self.cell, ConvRNNCellBase)
            and self.cell.supports_fused()
        )

    def _forward_fused(
        self, x: torch.Tensor, state: list[torch.Tensor], steps: list[int]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The loop over time on the cell's fused path; every hidden state is written straight into the output."""
        cell = self.cell
        b, t = x.shape[0], x.shape[1]
        spatial = list(x.shape[3:])
        hc = cell.hidden_channels
        dtype = x.dtype  # the hidden states (and outputs) in the input's dtype; the cell state in float32
        ctx = cell.fused_begin(x, state)
        if ctx["cl"] and len(spatial) in (2, 3):  # each output frame channels-last, like the cell's states
            out = torch.empty([b, t] + spatial + [hc], dtype=dtype, device=x.device).movedim(-1, 2)
        else:
            out = torch.empty([b, t, hc] + spatial, dtype=dtype, device=x.device)
        for i in steps:
            cell.fused_step(ctx, i, out[:, i])
        return out, cell.fused_state(ctx, out[:, steps[-1]].clone())


class RecurrentLayer(nn.Module):
    """One recurrent layer of a :class:`ConvRNN`: a forward direction, an optional backward one, an optional residual.

    Works on ``(B, T, C, *spatial)``. Its state is a flat list: the forward cell's state tensors, then the backward
    cell's.
    """

    def __init__(
        self,
        cell_fwd: ConvRNNCellBase,
        cell_bwd: ConvRNNCellBase | None,
        residual: bool,
        batched_input: bool | None = None,
    ) -> None:
        super().__init__()
        self.fwd = RecurrentDirection(cell_fwd, False, batched_input)
        self.bwd = RecurrentDirection(cell_bwd, True, batched_input) if cell_bwd is not None else None
        self.bidirectional = cell_bwd is not None
        self.in_channels = cell_fwd.in_channels
        self.out_channels = cell_fwd.hidden_channels * (2 if self.bidirectional else 1)
        self.num_states = cell_fwd.num_states * (2 if self.bidirectional else 1)
        self.residual = residual
        if residual and self.in_channels != self.out_channels:
            self.proj: nn.Module = Conv[Conv.CONV, cell_fwd.spatial_dims](
                self.in_channels, self.out_channels, kernel_size=1, bias=False
            )
        else:
            self.proj = nn.Identity()

    def set_batched_input(self, value: bool | None) -> None:
        """Batched input convolution (True), the plain per-step path (False) or the device's default (None)."""
        self.fwd.batched_input = value
        if self.bwd is not None:
            self.bwd.batched_input = value

    def set_fused(self, value: bool) -> None:
        """Allow (True, the default) or forbid (False) the cells' fused inference path."""
        self.fwd.fused = bool(value)
        if self.bwd is not None:
            self.bwd.fused = bool(value)

    def forward(self, x: torch.Tensor, state: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x: (B, T, C, *spatial) -> ((B, T, out_channels, *spatial), new state)."""
        n = self.fwd.num_states
        s_f: list[torch.Tensor] | None = None
        s_b: list[torch.Tensor] | None = None
        if state is not None:
            s_f = state[:n]
            s_b = state[n:]
        out, new_state = self.fwd(x, s_f)
        bwd = self.bwd
        if bwd is not None:
            out_b, st_b = bwd(x, s_b)
            out = torch.cat([out, out_b], 2)
            new_state = new_state + st_b
        if self.residual:
            b, t = x.shape[0], x.shape[1]
            spatial = list(x.shape[3:])
            res = self.proj(x.reshape([b * t, x.shape[2]] + spatial)).view([b, t, -1] + spatial)
            out = out + res
        return out, new_state


class ConvRNN(nn.Module):
    """Stacked convolutional recurrent network (ConvLSTM of Shi et al. 2015, https://arxiv.org/abs/1506.04214, or
    ConvGRU, https://arxiv.org/abs/1611.05435), unrolled over time.

    Options: several layers with their own hidden channels; residual connections between layers
    (``residual=True``: the residual ConvLSTM of Wei et al. 2018, "Residual Convolutional LSTM for Tweet Count
    Prediction", WWW'18 companion, a 1x1 projection where channels differ); bidirectional layers; an initial state in
    and the final state out; every time step or only the last one out.

    Args:
        spatial_dims: 2 for video frames, 3 for the volumes of a 4D scan (1 works too).
        in_channels: input channels C.
        hidden_channels: hidden channels per layer (an int repeats over ``num_layers``).
        num_layers: number of layers when ``hidden_channels`` is an int.
        kernel_size: odd kernel size of every gate convolution.
        cell: ``"lstm"``, ``"gru"`` or a ConvRNNCellBase subclass.
        bidirectional: run a second cell backwards in time and concatenate (output channels double).
        residual: add each layer's input to its output.
        return_sequences: output every time step (B, H, T, *spatial) or only the last one (B, H, *spatial)
            (bidirectional: the forward direction's last step and the backward direction's first).
        peephole: per-channel peephole connections (LSTM only).
        norm, norm_groups: optional GroupNorm on the gates (see ConvRNNCellBase).
        bias: gate biases.
        batched_input: True: compute every frame's input-to-gate convolution in one batched call over ``B * T``
            frames, so only the hidden-to-gate convolution stays in the loop (identical results); False: the plain
            per-step convolution over ``concat([x, h])``; None (default): batched for CUDA inputs, per-step on CPUs.
            Measured on a 2-core AVX512 CPU (torch 2.13, 64 hidden channels, 128x128 frames, one thread) the
            per-step path was faster for every input width tried: 1 channel 1.54 s vs 2.39 s (oneDNN runs a
            1-channel convolution at about 2 GFLOP/s), 8 channels 0.75 vs 0.94 s, 64 channels 1.15 vs 1.30 s
            (10 frames), in line with PERFORMANCE.md's 0.92x for split convolutions. The batched path fits
            devices where many small sequential kernels cost more than one large one. On CPUs without autograd
            (``torch.no_grad`` / ``torch.inference_mode``), cells without norm (LSTM: nor peepholes) take their
            fused per-step path (see :mod:`medst.networks.blocks.recurrent_cells`; equal to the plain path within
            float32 rounding), unless ``batched_input=True`` or ``set_fused(False)``.

    Shapes:
        ``x``: (B, C, T, *spatial). Output: (B, H_out, T, *spatial) (or (B, H_out, *spatial)), H_out the last
        layer's hidden channels (x2 if bidirectional).

    State: a flat list of tensors (B, H_l, *spatial): for each layer, the forward cell's state ([h, c] for LSTM,
    [h] for GRU), then the backward cell's. ``forward(x2, state=s)`` where ``_, s = forward(x1, return_state=True)``
    continues the sequence exactly (``supports_streaming``, unless bidirectional).

    Example::

        net = ConvRNN(2, in_channels=1, hidden_channels=(32, 32), cell="lstm")
        y, state = net(torch.rand(1, 1, 10, 64, 64), return_state=True)   # y: (1, 32, 10, 64, 64)
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        hidden_channels: Sequence[int] | int = 32,
        num_layers: int = 1,
        kernel_size: int = 3,
        cell: Any = "lstm",
        bidirectional: bool = False,
        residual: bool = False,
        return_sequences: bool = True,
        peephole: bool = False,
        norm: str | None = None,
        norm_groups: int = 1,
        bias: bool = True,
        batched_input: bool | None = None,
    ) -> None:
        super().__init__()
        if isinstance(hidden_channels, int):
            if num_layers < 1:
                raise ValueError(f"num_layers must be >= 1, got {num_layers}.")
            hidden_channels = [hidden_channels] * num_layers
        hidden_channels = list(hidden_channels)
        if len(hidden_channels) < 1:
            raise ValueError("hidden_channels must name at least one layer, e.g. (32,) or 32.")
        cell_cls = get_cell_class(cell)
        if peephole and not issubclass(cell_cls, ConvLSTMCell):
            raise ValueError("peephole connections exist only for the LSTM cell; set cell='lstm' or peephole=False.")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.bidirectional = bidirectional
        self.return_sequences = return_sequences
        self.supports_streaming = not bidirectional
        extra: dict[str, Any] = {"peephole": True} if peephole else {}
        layers = []
        c_in = in_channels
        for h in hidden_channels:
            kw = dict(
                spatial_dims=spatial_dims,
                in_channels=c_in,
                hidden_channels=h,
                kernel_size=kernel_size,
                bias=bias,
                norm=norm,
                norm_groups=norm_groups,
                **extra,
            )
            fwd = cell_cls(**kw)
            bwd = cell_cls(**kw) if bidirectional else None
            layer = RecurrentLayer(fwd, bwd, residual=residual, batched_input=batched_input)
            layers.append(layer)
            c_in = layer.out_channels
        self.layers = nn.ModuleList(layers)
        self.out_channels = c_in
        self.num_state_tensors = sum(layer.num_states for layer in layers)

    def set_batched_input(self, value: bool | None) -> None:
        """True: every frame's input convolution in one call; False: the plain per-step path; None: by device."""
        for layer in self.layers:
            layer.set_batched_input(value)

    def set_fused(self, value: bool) -> None:
        """True (default): cells without norm take their fused path for CPU inference; False: the plain per-step
        loop (``torch.cat([x, h])`` and one convolution per step), e.g. to compare the two."""
        for layer in self.layers:
            layer.set_fused(value)

    def forward_frames(
        self, x: torch.Tensor, state: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The same network on a frames-contiguous layout: x (B, T, C, *spatial) -> ((B, T, H_out, *spatial), state).

        Networks that already hold their features as (B*T, C, ...) (e.g. RecurrentSegNet) call this to avoid two
        transposes.
        """
        if state is not None and len(state) != self.num_state_tensors:
            raise ValueError(f"state must hold {self.num_state_tensors} tensors, got {len(state)}.")
        new_state: list[torch.Tensor] = []
        i = 0
        for layer in self.layers:
            s: list[torch.Tensor] | None = None
            if state is not None:
                s = state[i : i + layer.num_states]
            i += layer.num_states
            x, st = layer(x, s)
            new_state = new_state + st
        return x, new_state

    def forward(
        self, x: torch.Tensor, state: list[torch.Tensor] | None = None, return_state: bool = False
    ) -> Union[torch.Tensor, tuple[torch.Tensor, list[torch.Tensor]]]:  # noqa: UP007  (TorchScript)
        """x: (B, C, T, *spatial) -> (B, H_out, T, *spatial) [, state]."""
        if x.dim() != self.spatial_dims + 3:
            raise ValueError(
                f"expected input (B, C, T, *spatial) with {self.spatial_dims} spatial dims, got shape {list(x.shape)}."
            )
        y, new_state = self.forward_frames(_to_frames(x), state)
        if self.return_sequences:
            out = y.transpose(1, 2)
        elif self.bidirectional:
            h = self.hidden_channels[-1]
            out = torch.cat([y[:, -1, :h], y[:, 0, h:]], 1)
        else:
            out = y[:, -1]
        if return_state:
            return out, new_state
        return out


# ---- registered variants ---------------------------------------------------------------------------------------
_EX = dict(
    example_kwargs=dict(in_channels=2, hidden_channels=4), example_input_shape=(2, 2, 3, 8, 8), example_output_shape=(2, 4, 3, 8, 8)
)


@register_network(**_EX)
def convlstm(**kwargs: Any) -> ConvRNN:
    """ConvLSTM (Shi 2015), one layer of 64 hidden channels, 3x3 gates, video frames: (B, C, T, H, W) -> (B, 64, T, H, W)."""
    return ConvRNN(**dict(dict(spatial_dims=2, in_channels=1, hidden_channels=64, cell="lstm"), **kwargs))


@register_network(**_EX)
def convgru(**kwargs: Any) -> ConvRNN:
    """ConvGRU (Ballas 2015 / Siam 2016), one layer of 64 hidden channels, 3x3 gates, video frames."""
    return ConvRNN(**dict(dict(spatial_dims=2, in_channels=1, hidden_channels=64, cell="gru"), **kwargs))


@register_network(
    example_kwargs=dict(in_channels=2, hidden_channels=(4, 4, 4)),
    example_input_shape=(2, 2, 3, 8, 8),
    example_output_shape=(2, 4, 3, 8, 8),
)
def convlstm_residual(**kwargs: Any) -> ConvRNN:
    """Residual ConvLSTM (Wei 2018): three 64-channel layers with residual connections between them."""
    return ConvRNN(
        **dict(dict(spatial_dims=2, in_channels=1, hidden_channels=(64, 64, 64), cell="lstm", residual=True), **kwargs)
    )


@register_network(
    example_kwargs=dict(in_channels=2, hidden_channels=4), example_input_shape=(2, 2, 3, 8, 8), example_output_shape=(2, 8, 3, 8, 8)
)
def convlstm_bidirectional(**kwargs: Any) -> ConvRNN:
    """Bidirectional ConvLSTM, one layer of 2 x 32 hidden channels (no streaming)."""
    return ConvRNN(**dict(dict(spatial_dims=2, in_channels=1, hidden_channels=32, bidirectional=True), **kwargs))
