"""Convolutional recurrent cells: one base class owning the fused gate convolution, LSTM and GRU gate maths.

A cell advances one time step. Its single weight tensor has shape ``(G * H, C + H, k, k[, k])`` (G gates, C input
channels, H hidden channels): the convolution over ``concat([x, h])`` of the most-used PyTorch ConvLSTM
formulation, so weights load from and into that formulation unchanged (gate order i, f, o, g for the LSTM).
Because a convolution over a concatenation is the sum of convolutions over its parts, the input part
``W[:, :C] * x + b`` can be computed for *all* frames in one batched call (``input_gates`` on a ``(B*T, C, ...)``
tensor) and only the hidden part ``W[:, C:] * h`` stays inside the loop over time (``step``). The two paths are
mathematically identical; ``forward`` is the plain per-step path, kept as the reference.

A third path serves inference on CPUs (no autograd): ``fused_begin`` / ``fused_step`` / ``fused_state``. It keeps
one preallocated ``[x, h]`` buffer in the compute dtype that each step writes the new frame and the new hidden
state into (no concatenation, no per-step casts of the weights), one sigmoid over all gates (the candidate gate's
weights are doubled once per sequence so that ``tanh(a) = 2 sigmoid(2a) - 1`` needs no extra pass), the cell state
held as ``2c`` in float32 and updated in place, and the new hidden state written straight into the caller's output
frame (the GRU cell: two buffers, ``[x, h]`` and ``[x, r.h]``, the same doubling for its candidate). Its
convolutions call oneDNN directly (PyTorch's ``F.conv3d`` picks its slower native kernel for the small batch-1
inputs of the streamed bundles' coarse scales in float32) and run in ``compute_dtype``, or in the CPU autocast
dtype while autocast is on. The measured speed-ups (and what was tried and not kept) are in
``benchmarks/bench_convlstm.py``.

The unroll over time lives in :class:`medst.networks.nets.ConvRNN`, the only loop over time in medst.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.layers.factories import Conv

__all__ = [
    "ConvRNNCellBase",
    "ConvLSTMCell",
    "ConvGRUCell",
    "RecurrentStepBase",
    "get_cell_class",
    "fast_tanh",
]


_USE_ONEDNN = True  # False: F.conv2d / F.conv3d on the fused path too (to measure what calling oneDNN gives)


def _fused_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int) -> torch.Tensor:
    """The fused path's "same" convolution (stride 1). On CPUs with oneDNN, 2D and 3D, float32 and bfloat16:
    oneDNN's convolution called directly, because ``F.conv2d`` / ``F.conv3d`` hand a float32 batch-1 input of under
    20,480 values in its first four dims (the streamed bundles' coarse scales, e.g. 128 channels x 8 x 8^2 voxels) to
    PyTorch's own ``slow_conv3d`` / ``slow_conv2d``, measured 1.7-1.9x slower there (3D, 8^3 voxels, 128 to 256
    channels). Other dtypes take ``F.conv*d`` (oneDNN's float16 needs AVX512-FP16; float64 it does not serve)."""
    nd = x.dim() - 2
    onednn = x.device.type == "cpu" and x.dtype in (torch.float32, torch.bfloat16)
    if _USE_ONEDNN and nd in (2, 3) and onednn and torch.backends.mkldnn.is_available():
        return torch.mkldnn_convolution(x, weight, bias, [padding] * nd, [1] * nd, [1] * nd, 1)
    if nd == 2:
        return F.conv2d(x, weight, bias, padding=padding)
    if nd == 3:
        return F.conv3d(x, weight, bias, padding=padding)
    return F.conv1d(x, weight, bias, padding=padding)


def fast_tanh(x: torch.Tensor) -> torch.Tensor:
    """``tanh(x) = 2 * sigmoid(2x) - 1``: the same function (to ~1e-7 absolute), about 5x faster than ``torch.tanh``
    on CPU for float32 (measured 0.5 ms against 4 ms per 1M values, torch 2.13, AVX512), where the gate maths of a
    ConvLSTM would otherwise spend a tenth of its time."""
    return torch.sigmoid(x * 2.0) * 2.0 - 1.0


class ConvRNNCellBase(nn.Module):
    """Base of convolutional recurrent cells: owns the fused gate convolution, the optional gate norm and the state.

    Subclasses set ``num_gates`` and ``num_states`` and write only their gate maths in ``step`` and ``forward``.

    Args:
        spatial_dims: 1, 2 (video frames) or 3 (volumes of a 4D scan).
        in_channels: input channels C.
        hidden_channels: hidden channels H.
        kernel_size: odd kernel size of the gate convolution ("same" padding).
        bias: add a bias to the gates.
        norm: ``None`` or ``"group"``: GroupNorm over each gate's summed pre-activations, ``norm_groups`` groups per
            gate (groups never straddle two gates). GroupNorm does not fix the image size; LayerNorm over
            ``(C, H, W)`` (as in some PredRNN code) would, so it is not offered.
        norm_groups: groups per gate for ``norm="group"``; must divide ``hidden_channels``.
    """

    num_gates = 1
    num_states = 1

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        hidden_channels: int,
        kernel_size: int = 3,
        bias: bool = True,
        norm: str | None = None,
        norm_groups: int = 1,
    ) -> None:
        super().__init__()
        if spatial_dims not in (1, 2, 3):
            raise ValueError(f"spatial_dims must be 1, 2 or 3 (2 for video frames, 3 for volumes), got {spatial_dims}.")
        if in_channels < 1 or hidden_channels < 1:
            raise ValueError(f"in_channels and hidden_channels must be >= 1, got {in_channels}, {hidden_channels}.")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (for 'same' padding), got {kernel_size}.")
        if norm not in (None, "group"):
            raise ValueError(f"norm must be None or 'group' (GroupNorm over the gates), got {norm!r}.")
        if norm == "group" and (norm_groups < 1 or hidden_channels % norm_groups != 0):
            raise ValueError(f"norm_groups ({norm_groups}) must divide hidden_channels ({hidden_channels}).")
        # instance copies of the class constants, so that TorchScript sees them
        self.num_gates = type(self).num_gates
        self.num_states = type(self).num_states
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.kernel_size = kernel_size
        self.padding = kernel_size // 2
        self.conv = Conv[Conv.CONV, spatial_dims](
            in_channels + hidden_channels,
            self.num_gates * hidden_channels,
            kernel_size=kernel_size,
            padding=self.padding,
            bias=bias,
        )
        # None: convolve in the input's dtype. A lower precision (torch.bfloat16 / torch.float16; set by
        # medst.networks.optimize_for_inference) runs the gate convolutions in that dtype while the cell state stays
        # in float32.
        self.compute_dtype = None
        # True: gates and states channels-last (NHWC / NDHWC), which oneDNN convolves faster on CPUs; also set by
        # optimize_for_inference.
        self.channels_last = False
        self.use_norm = norm == "group"
        self.norm_groups = norm_groups
        if self.use_norm:
            self.norm_weight = nn.Parameter(torch.ones(self.num_gates * hidden_channels))
            self.norm_bias = nn.Parameter(torch.zeros(self.num_gates * hidden_channels))
        else:
            self.register_parameter("norm_weight", None)
            self.register_parameter("norm_bias", None)

    # ---- convolution helpers -------------------------------------------------------------------------------------
    def _conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.spatial_dims == 2:
            return F.conv2d(x, weight, bias, padding=self.padding)
        if self.spatial_dims == 3:
            return F.conv3d(x, weight, bias, padding=self.padding)
        return F.conv1d(x, weight, bias, padding=self.padding)

    def _low(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the compute dtype (unchanged when none is set), channels-last if asked."""
        cd = self.compute_dtype
        if cd is not None:
            x = x.to(cd)
        return self._fmt(x)

    def _fmt(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            if x.dim() == 4:
                return x.contiguous(memory_format=torch.channels_last)
            if x.dim() == 5:
                return x.contiguous(memory_format=torch.channels_last_3d)
        return x

    def input_weight(self) -> torch.Tensor:
        """The input slice ``W[:, :C]`` of the fused weight."""
        return self.conv.weight[:, : self.in_channels]

    def hidden_weight(self) -> torch.Tensor:
        """The hidden slice ``W[:, C:]`` of the fused weight, contiguous and in the compute dtype, once per sequence."""
        return self._low(self.conv.weight[:, self.in_channels :].contiguous())

    def input_gates(self, x: torch.Tensor) -> torch.Tensor:
        """Input-to-gate pre-activations ``W[:, :C] * x + b``.

        Args:
            x: (N, C, *spatial); N may be ``B * T`` to do every frame in one call.

        Returns:
            (N, G * H, *spatial), in the compute dtype.
        """
        b = self.conv.bias
        if b is not None:
            b = self._low(b)
        return self._conv(self._low(x), self._low(self.input_weight()), b)

    def _norm(self, pre: torch.Tensor, first_gate: int, n_gates: int) -> torch.Tensor:
        """GroupNorm over gates ``first_gate .. first_gate + n_gates`` of ``pre`` (a no-op without a norm)."""
        w = self.norm_weight
        b = self.norm_bias
        if w is None or b is None:
            return pre
        s = first_gate * self.hidden_channels
        e = s + n_gates * self.hidden_channels
        return F.group_norm(pre, n_gates * self.norm_groups, w[s:e], b[s:e], 1e-5)

    def init_state(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Zero state for a frame-shaped input ``x`` (B, C, *spatial): ``num_states`` tensors (B, H, *spatial)."""
        shape = [x.shape[0], self.hidden_channels] + list(x.shape[2:])
        return [self._fmt(torch.zeros(shape, dtype=x.dtype, device=x.device)) for _ in range(self.num_states)]

    def step(
        self, x_gates: torch.Tensor, state: list[torch.Tensor], hidden_weight: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One time step from precomputed input gates; returns ``(h_new, new_state)``."""
        raise NotImplementedError

    # ---- fused inference path (CPU, no autograd) ----------------------------------------------------------------
    def supports_fused(self) -> bool:
        """Whether this cell has the fused inference path (``fused_begin`` / ``fused_step`` / ``fused_state``)."""
        return False

    def state_dtype(self, x: torch.Tensor) -> torch.dtype:
        """The dtype the fused path keeps the cell state in: float32 for half-precision inputs (as under autocast),
        the input's dtype otherwise (hidden states and outputs keep the input's dtype)."""
        return torch.float32 if x.dtype in (torch.bfloat16, torch.float16) else x.dtype

    def fused_dtype(self, x: torch.Tensor) -> torch.dtype:
        """The dtype the fused path convolves in: ``compute_dtype`` if set, else the CPU autocast dtype while
        autocast is on (the fused path calls oneDNN directly, which autocast does not see), else ``x``'s dtype."""
        if self.compute_dtype is not None:
            return self.compute_dtype
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            return torch.get_autocast_dtype("cpu")
        return x.dtype

    def _fused_weights(self, x: torch.Tensor, doubled_from: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The gate weight and bias in the compute dtype, the rows from gate ``doubled_from`` on doubled (for
        ``tanh(a) = 2 sigmoid(2a) - 1``; exact in floating point: conv(2W) = 2 conv(W)); once per sequence."""
        dt = self.fused_dtype(x)
        acc = self.state_dtype(x)
        hc = self.hidden_channels
        scale = torch.ones(self.num_gates * hc, dtype=acc, device=x.device)
        scale[doubled_from * hc :] = 2.0
        w = self.conv.weight.detach().to(acc) * scale.view([-1] + [1] * (self.spatial_dims + 1))
        b = self.conv.bias
        return w.to(dt), None if b is None else (b.detach().to(acc) * scale).to(dt)

    def _fused_setup(
        self, x: torch.Tensor, state: list[torch.Tensor], doubled_from: int, groups: list[tuple[int, int]]
    ) -> dict[str, Any]:
        """The context shared by the cells' fused paths, for a sequence ``x`` (B, T, C, *spatial): ``"x"``;
        ``"z"``: the ``[x, h]`` buffer in the compute dtype (holding ``h``); ``"w"`` / ``"b"``: the weight and bias
        of each gate group in ``groups`` (the gate row ranges that one convolution computes: LSTM all four gates;
        GRU z and r, then the candidate over the reset hidden state), the candidate's rows doubled;
        ``"cl"``: whether the buffers (and so the outputs) are channels-last; ``"hprev"``: the last hidden state;
        ``"acc"``: the state dtype.
        """
        dt = self.fused_dtype(x)
        cin = self.in_channels
        w, b = self._fused_weights(x, doubled_from)
        shape = [x.shape[0], cin + self.hidden_channels] + list(x.shape[3:])
        z = self._fmt(torch.empty(shape, dtype=dt, device=x.device))
        z[:, cin:].copy_(state[0])
        return {
            "x": x,
            "z": z,
            "w": [self._fmt(w[lo:hi].contiguous()) for lo, hi in groups],
            "b": [None if b is None else b[lo:hi] for lo, hi in groups],
            "cl": self.channels_last,
            "hprev": state[0],
            "acc": self.state_dtype(x),
        }

    def _fused_gates(self, ctx: dict[str, Any], k: int, z: torch.Tensor | None = None) -> torch.Tensor:
        """The sigmoid of gate group ``k``'s pre-activations (one convolution over the buffer ``z``, default
        ``ctx["z"]``), in the state dtype: a half-precision convolution's output is widened into a float32 buffer
        first, so that every later gate operation runs on float32 alone. Measured on a ConvLSTM's gate maths
        (64 hidden, 128^2, bf16 gates, one thread): 21 ms per step against 35 ms with mixed bf16 / float32
        operands (PyTorch casts those element by element), and the bf16 rounding of the sigmoids themselves, which
        the doubled candidate (``2 s - 1``) doubles, is gone."""
        pre = _fused_conv(ctx["z"] if z is None else z, ctx["w"][k], ctx["b"][k], self.padding)
        acc = ctx["acc"]
        if pre.dtype == acc:
            return torch.sigmoid_(pre)
        key = f"s{k}"
        if key not in ctx:
            ctx[key] = torch.empty_like(pre, dtype=acc)
        return torch.sigmoid_(ctx[key].copy_(pre))

    def fused_begin(self, x: torch.Tensor, state: list[torch.Tensor]) -> dict[str, Any]:
        """Prepare a sequence: returns the context that ``fused_step`` updates in place.

        Args:
            x: the whole sequence (B, T, C, *spatial).
            state: the initial state (``num_states`` tensors (B, H, *spatial)).
        """
        raise NotImplementedError(f"{type(self).__name__} has no fused inference path.")

    def fused_step(self, ctx: dict[str, Any], t: int, out: torch.Tensor) -> None:
        """Time step ``t`` of the sequence given to ``fused_begin``: writes the new hidden state into ``out``."""
        raise NotImplementedError(f"{type(self).__name__} has no fused inference path.")

    def fused_state(self, ctx: dict[str, Any], h: torch.Tensor) -> list[torch.Tensor]:
        """The state after the last ``fused_step``, given its hidden state ``h``."""
        raise NotImplementedError(f"{type(self).__name__} has no fused inference path.")

    def forward(self, x: torch.Tensor, state: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One time step, the plain way (the reference path).

        Args:
            x: one frame, (B, C, *spatial).
            state: ``num_states`` tensors (B, H, *spatial), or None for zeros.

        Returns:
            ``(h, state)``: h is (B, H, *spatial).
        """
        raise NotImplementedError


class ConvLSTMCell(ConvRNNCellBase):
    """Convolutional LSTM cell of Shi et al. 2015, "Convolutional LSTM Network: A Machine Learning Approach for
    Precipitation Nowcasting", https://arxiv.org/abs/1506.04214.

    Gates (order i, f, o, g in the fused weight, as in the widely used PyTorch ConvLSTM):
    ``i = s(W_i*[x,h] + w_ci.c + b_i)``, ``f = s(W_f*[x,h] + w_cf.c + b_f)``, ``g = tanh(W_g*[x,h] + b_g)``,
    ``c' = f.c + i.g``, ``o = s(W_o*[x,h] + w_co.c' + b_o)``, ``h' = o.tanh(c')``.

    Peephole weights (``peephole=True``): the paper's Hadamard weights ``w_c`` are full (H, *spatial) maps, which fix
    the image size; here they are per-channel weights of shape (H, 1, ..., 1) broadcast over space, so one network
    runs on any frame size.

    Args:
        spatial_dims, in_channels, hidden_channels, kernel_size, bias, norm, norm_groups: see ConvRNNCellBase.
        peephole: add the (per-channel) peephole connections.

    State: ``[h, c]``, each (B, H, *spatial).
    """

    num_gates = 4
    num_states = 2

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        hidden_channels: int,
        kernel_size: int = 3,
        bias: bool = True,
        norm: str | None = None,
        norm_groups: int = 1,
        peephole: bool = False,
    ) -> None:
        super().__init__(spatial_dims, in_channels, hidden_channels, kernel_size, bias, norm, norm_groups)
        self.peephole = peephole
        if peephole:
            bound = 1.0 / math.sqrt(hidden_channels)
            self.peephole_weight = nn.Parameter(
                torch.empty([3, hidden_channels] + [1] * spatial_dims).uniform_(-bound, bound)
            )
        else:
            self.register_parameter("peephole_weight", None)

    def _update(self, pre: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        pre = self._norm(pre.to(c.dtype), 0, 4)
        hc = self.hidden_channels
        p = self.peephole_weight
        if p is None:
            ifo = torch.sigmoid(pre[:, : 3 * hc])  # i, f, o are adjacent: one call
            g = fast_tanh(pre[:, 3 * hc :])
            c_new = torch.addcmul(ifo[:, hc : 2 * hc] * c, ifo[:, :hc], g)
            h_new = ifo[:, 2 * hc :] * fast_tanh(c_new)
            return h_new, [h_new, c_new]
        i, f, o, g = torch.chunk(pre, 4, dim=1)
        i = i + p[0] * c
        f = f + p[1] * c
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * fast_tanh(g)
        o = o + p[2] * c_new
        h_new = torch.sigmoid(o) * fast_tanh(c_new)
        return h_new, [h_new, c_new]

    def step(
        self, x_gates: torch.Tensor, state: list[torch.Tensor], hidden_weight: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        w = hidden_weight if hidden_weight is not None else self.hidden_weight()
        return self._update(x_gates + self._conv(self._low(state[0]), w, None), state[1])

    def supports_fused(self) -> bool:
        return self.peephole_weight is None and not self.use_norm

    def fused_begin(self, x: torch.Tensor, state: list[torch.Tensor]) -> dict[str, Any]:
        """The shared context (one gate group: all four gates, the candidate's rows doubled) and ``"c2"``: the cell
        state times 2 in the state dtype."""
        ctx = self._fused_setup(x, state, 3, [(0, 4 * self.hidden_channels)])
        ctx["c2"] = self._fmt(state[1].to(self.state_dtype(x)) * 2.0)
        return ctx

    def fused_step(self, ctx: dict[str, Any], t: int, out: torch.Tensor) -> None:
        hc, cin = self.hidden_channels, self.in_channels
        ctx["z"][:, :cin].copy_(ctx["x"][:, t])
        s = self._fused_gates(ctx, 0)  # i, f, o, (g + 1) / 2
        i, f, o, sg = s[:, :hc], s[:, hc : 2 * hc], s[:, 2 * hc : 3 * hc], s[:, 3 * hc :]
        c2 = ctx["c2"]
        c2.mul_(f).addcmul_(i, sg, value=4.0).sub_(i, alpha=2.0)  # 2c' = f.2c + 2i.g, g = 2 sg - 1
        th = torch.sigmoid(c2).mul_(2.0).sub_(1.0)  # tanh(c') = 2 sigmoid(2c') - 1
        if out.dtype == th.dtype:
            torch.mul(o, th, out=out)
        else:  # a narrower output: compute, then cast in one copy (out= of another dtype casts element by element)
            out.copy_(th.mul_(o))
        ctx["z"][:, cin:].copy_(out)

    def fused_state(self, ctx: dict[str, Any], h: torch.Tensor) -> list[torch.Tensor]:
        return [h, ctx["c2"] * 0.5]

    def forward(self, x: torch.Tensor, state: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if state is None:
            state = self.init_state(x)
        b = self.conv.bias
        if b is not None:
            b = self._low(b)
        inp = torch.cat([self._low(x), self._low(state[0])], dim=1)  # cast the parts, not the concatenation
        pre = self._conv(self._low(inp), self._low(self.conv.weight), b)
        return self._update(pre, state[1])


class ConvGRUCell(ConvRNNCellBase):
    """Convolutional GRU cell, as used for video segmentation by Siam et al. 2016, "Convolutional Gated Recurrent
    Networks for Video Segmentation", https://arxiv.org/abs/1611.05435 (after Ballas et al. 2015,
    https://arxiv.org/abs/1511.06432).

    Gates (order z, r, n in the fused weight): ``z = s(W_z*[x,h] + b_z)``, ``r = s(W_r*[x,h] + b_r)``,
    ``n = tanh(W_n*[x, r.h] + b_n)``, ``h' = (1 - z).n + z.h``. The candidate sees the reset hidden state, as in the
    paper, so its hidden convolution runs after the one for z and r; all three share one weight tensor
    ``(3H, C + H, k, k)``.

    State: ``[h]``, (B, H, *spatial).
    """

    num_gates = 3
    num_states = 1

    def _finish(
        self, x_gates: torch.Tensor, h: torch.Tensor, w_h: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        hc = self.hidden_channels
        zr = (x_gates[:, : 2 * hc] + self._conv(self._low(h), w_h[: 2 * hc], None)).to(h.dtype)
        z, r = torch.chunk(torch.sigmoid(self._norm(zr, 0, 2)), 2, dim=1)
        n = (x_gates[:, 2 * hc :] + self._conv(self._low(r * h), w_h[2 * hc :], None)).to(h.dtype)
        n = fast_tanh(self._norm(n, 2, 1))
        h_new = (1.0 - z) * n + z * h
        return h_new, [h_new]

    def step(
        self, x_gates: torch.Tensor, state: list[torch.Tensor], hidden_weight: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        w = hidden_weight if hidden_weight is not None else self.hidden_weight()
        return self._finish(x_gates, state[0], w)

    def supports_fused(self) -> bool:
        return not self.use_norm

    def fused_begin(self, x: torch.Tensor, state: list[torch.Tensor]) -> dict[str, Any]:
        """The shared context (two gate groups: z and r over ``[x, h]``, then the candidate, its rows doubled, over
        ``[x, r.h]``) and ``"z2"``: the ``[x, r.h]`` buffer."""
        hc = self.hidden_channels
        ctx = self._fused_setup(x, state, 2, [(0, 2 * hc), (2 * hc, 3 * hc)])
        ctx["z2"] = torch.empty_like(ctx["z"])
        return ctx

    def fused_step(self, ctx: dict[str, Any], t: int, out: torch.Tensor) -> None:
        hc, cin = self.hidden_channels, self.in_channels
        h, z, z2 = ctx["hprev"], ctx["z"], ctx["z2"]
        xt = ctx["x"][:, t]
        z[:, :cin].copy_(xt)
        z2[:, :cin].copy_(xt)
        zr = self._fused_gates(ctx, 0)
        u, r = zr[:, :hc], zr[:, hc:]
        torch.mul(r, h, out=z2[:, cin:])  # the candidate's convolution reads the reset hidden state
        n = self._fused_gates(ctx, 1, z2).mul_(2.0).sub_(1.0)  # tanh, as 2s(2a)-1
        out.copy_(torch.sub(h, n).mul_(u).add_(n))  # h' = (1 - u).n + u.h
        z[:, cin:].copy_(out)
        ctx["hprev"] = out

    def fused_state(self, ctx: dict[str, Any], h: torch.Tensor) -> list[torch.Tensor]:
        return [h]

    def forward(self, x: torch.Tensor, state: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if state is None:
            state = self.init_state(x)
        h = state[0]
        hc = self.hidden_channels
        w = self._low(self.conv.weight)
        b = self.conv.bias
        b_zr = self._low(b[: 2 * hc]) if b is not None else None
        b_n = self._low(b[2 * hc :]) if b is not None else None
        zr = self._conv(self._low(torch.cat([x, h], 1)), self._low(w[: 2 * hc]), b_zr).to(h.dtype)
        z, r = torch.chunk(torch.sigmoid(self._norm(zr, 0, 2)), 2, dim=1)
        n = self._conv(self._low(torch.cat([x, r * h], 1)), self._low(w[2 * hc :]), b_n).to(h.dtype)
        n = fast_tanh(self._norm(n, 2, 1))
        h_new = (1.0 - z) * n + z * h
        return h_new, [h_new]


class RecurrentStepBase(nn.Module):
    """Base of modules that advance a whole stack of layers by one time step (E3D-LSTM, PredNet) for
    :class:`medst.networks.nets.RecurrentDirection`: no input gates to precompute, ``step`` is ``forward``.

    Subclasses implement ``init_state(x)`` and ``forward(x, state) -> (output, state)`` and set ``num_states``.
    """

    def input_gates(self, x: torch.Tensor) -> torch.Tensor:
        """Nothing to precompute: a step's input depends on earlier steps."""
        return x

    def hidden_weight(self) -> torch.Tensor:
        return torch.zeros(0)

    def step(
        self, x_gates: torch.Tensor, state: list[torch.Tensor], hidden_weight: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.forward(x_gates, state)


_CELLS = {"lstm": ConvLSTMCell, "gru": ConvGRUCell}


def get_cell_class(cell: str | type[ConvRNNCellBase]) -> type[ConvRNNCellBase]:
    """``"lstm"`` -> ConvLSTMCell, ``"gru"`` -> ConvGRUCell; a ConvRNNCellBase subclass passes through."""
    if isinstance(cell, type) and issubclass(cell, ConvRNNCellBase):
        return cell
    if isinstance(cell, str) and cell.lower() in _CELLS:
        return _CELLS[cell.lower()]
    raise ValueError(f"cell must be one of {sorted(_CELLS)} or a ConvRNNCellBase subclass, got {cell!r}.")
