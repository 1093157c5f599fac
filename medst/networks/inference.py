"""The fast inference path of medst networks: ``optimize_for_inference(net, precision=...)``.

What it does (see /work/shared/PERFORMANCE.md for the measurements behind it):

- ``eval()`` mode;
- ``precision="bf16"`` / ``"fp16"``: the network runs under ``torch.autocast`` in that dtype, and the convolutional
  recurrent cells convolve their gates in it while keeping the gate maths and the cell state in float32 (so a long
  sequence does not accumulate low-precision error in its memory); outputs come back as float32;
- on CPUs, the recurrent cells keep their gates and states channels-last (oneDNN's faster layout);
- ``precision="auto"``: bfloat16 where the hardware runs it natively (a CUDA GPU with bf16; a CPU with AVX512-BF16 or
  AMX), float16 on other CUDA GPUs, float32 otherwise.

Without autograd on a CPU the recurrent cells take their fused per-step path by themselves (see
:mod:`medst.networks.blocks.recurrent_cells`); this function sets its precision and layout.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import torch
import torch.nn as nn

from medst.networks.blocks.recurrent_cells import ConvRNNCellBase

__all__ = [
    "PRECISIONS",
    "cpu_has_native_bf16",
    "resolve_precision",
    "autocast_dtype",
    "optimize_for_inference",
    "AutocastInference",
]

logger = logging.getLogger(__name__)

#: medst's one precision vocabulary (the API, the CLI, the inferers and the networks all use it):
#: ``"auto"`` resolves per device (:func:`resolve_precision`), the others name a dtype.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (x86 AVX512-BF16 or AMX).

    Without such support PyTorch emulates bfloat16 and it is slower than float32, so ``precision="auto"`` keeps
    float32 there.
    """
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def resolve_precision(precision: str = "auto", device: torch.device | str | None = None) -> str:
    """The precision name that runs on ``device``: ``"auto"`` -> ``"bf16"``, ``"fp16"`` or ``"fp32"`` (default
    device: CUDA if available, else CPU); any other name of :data:`PRECISIONS` is returned as is.

    ``"auto"`` is bfloat16 on CUDA where the GPU supports it, else float16; on a CPU bfloat16 only where the CPU
    computes it natively (:func:`cpu_has_native_bf16`), else float32; float32 on any other device.
    :func:`autocast_dtype` gives the matching ``torch.dtype``.

    Raises:
        ValueError: for a precision not in :data:`PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    if precision != "auto":
        return precision
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if dev.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def autocast_dtype(precision: str = "auto", device: torch.device | str | None = None) -> torch.dtype | None:
    """The ``torch.autocast`` dtype of :func:`resolve_precision` ``(precision, device)``; ``None`` for float32
    (no autocast). float16 on a CPU is logged as a warning: it is emulated there and much slower."""
    dev = torch.device(device) if device is not None else None
    name = resolve_precision(precision, dev)
    if name == "fp16" and dev is not None and dev.type == "cpu":
        logger.warning("precision='fp16' on a CPU is usually much slower than 'bf16' or 'fp32'.")
    return None if name == "fp32" else _DTYPES[name]


def _to_float32(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out.float() if out.is_floating_point() and out.dtype != torch.float32 else out
    if isinstance(out, tuple):
        return tuple(_to_float32(o) for o in out)
    if isinstance(out, list):
        return [_to_float32(o) for o in out]
    if isinstance(out, dict):
        return {k: _to_float32(v) for k, v in out.items()}
    return out


class AutocastInference(nn.Module):
    """Runs ``network`` under ``torch.autocast(device_type, dtype)`` and returns float32 outputs.

    Passes every argument through (``state=``, ``return_state=`` included) and exposes the wrapped network's
    ``supports_streaming``.
    """

    def __init__(self, network: nn.Module, dtype: torch.dtype, device_type: str = "cpu") -> None:
        super().__init__()
        self.network = network
        self.dtype = dtype
        self.device_type = device_type
        self.supports_streaming = bool(getattr(network, "supports_streaming", False))

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with torch.autocast(self.device_type, dtype=self.dtype):
            out = self.network(*args, **kwargs)
        return _to_float32(out)


def optimize_for_inference(
    network: nn.Module,
    precision: str = "auto",
    device: torch.device | str | None = None,
    channels_last: bool | None = None,
) -> nn.Module:
    """Put ``network`` on its fast inference path; returns the module to call.

    Args:
        network: any medst (or other) network; it is switched to eval mode, and its recurrent cells are set to
            convolve in the chosen precision (in place).
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (see :func:`resolve_precision`).
        device: the device it will run on (for ``"auto"``; default: the network's parameters' device).
        channels_last: keep the recurrent cells' gates and states channels-last (default: on CPUs, where oneDNN
            convolves NHWC faster; the rest of the network keeps its layout).

    Returns:
        ``network`` itself for float32, otherwise an :class:`AutocastInference` wrapping it. Outputs are float32.

    Example::

        fast = optimize_for_inference(create_network("convlstm_seg_small"), precision="auto")
        with torch.inference_mode():
            logits = fast(video)
    """
    if device is None:
        p = next(network.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    dev = torch.device(device)
    name = resolve_precision(precision, dev)
    dtype = autocast_dtype(name, dev) or torch.float32
    if channels_last is None:
        # measured on a 2-core AVX512 CPU (ConvLSTM, 64 hidden, 128^2): the gate convolution runs 1.3-1.5x faster
        # channels-last in float32 and bfloat16 alike, and the fused cells do their gate maths on the layout too
        channels_last = dev.type == "cpu"
    network.eval()
    for m in network.modules():
        if isinstance(m, ConvRNNCellBase):
            m.compute_dtype = None if dtype == torch.float32 else dtype
            m.channels_last = bool(channels_last)
    logger.info("inference precision: %s on %s", name, dev.type)
    if dtype == torch.float32:
        return network
    return AutocastInference(network, dtype, dev.type)
