"""MONAI ``Inferer`` classes over :mod:`medst.inferers.utils`, the names bundle configs instantiate."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.inferers import Inferer

from medst.networks.inference import AutocastInference

from .utils import (
    CLIP_AVERAGES,
    OUTPUTS,
    PRECISIONS,
    SequenceStreamer,
    autocast_dtype,
    multi_clip_inference,
    sliding_window_volume,
    stream_sequence,
)

__all__ = ["VolumeInferer", "StreamingInferer", "AutocastInferer", "AtlasPriorInferer", "MultiClipInferer"]


def _default_sw_device(sw_device: torch.device | str | None) -> torch.device | str | None:
    """CUDA when it is there; otherwise leave the choice to the network's device."""
    if sw_device is None and torch.cuda.is_available():
        return torch.device("cuda")
    return sw_device


def _settings_of(fn: Callable, skip: int) -> tuple[str, ...]:
    """The names of ``fn``'s settings: its positional-or-keyword parameters after the first ``skip``."""
    params = [p for p in inspect.signature(fn).parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
    return tuple(p.name for p in params[skip:])


# the inferers keep each setting under the function's parameter name and forward them by that name
_VOLUME_SETTINGS = _settings_of(sliding_window_volume, 4)  # after inputs, roi_size, sw_batch_size, predictor
_STREAM_SETTINGS = _settings_of(stream_sequence, 4)  # after inputs, roi_size, time_chunk, network


def _check(precision: str, output: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}.")


class VolumeInferer(Inferer):
    """Fast, memory-lean sliding-window inference for 3D scans, videos and 4D scans.

    A thin class over :func:`medst.inferers.utils.sliding_window_volume` (see there for every argument), usable
    wherever MONAI's ``SlidingWindowInferer`` is: ``inferer(inputs, network)``. Windows run on CUDA when it is
    there (the network is moved), the output is stitched on the GPU only where it fits.

    Example::

        inferer = VolumeInferer((96, 96, 96), sw_batch_size=2, overlap=0.5, mode="gaussian", output="labels")
        labels = inferer(image, network)  # (B, 1, X, Y, Z) uint8

    Bundle config::

        "inferer": {"_target_": "medst.inferers.VolumeInferer", "roi_size": [96, 96, 96], "precision": "auto"}
    """

    def __init__(
        self,
        roi_size: Sequence[int] | int,
        sw_batch_size: int = 1,
        overlap: Sequence[float] | float = 0.25,
        mode: str = "constant",
        sigma_scale: Sequence[float] | float = 0.125,
        padding_mode: str = "constant",
        cval: float = 0.0,
        precision: str = "auto",
        output: str = "logits",
        flips: Sequence[Sequence[int]] = (),
        channels_last: bool | None = None,
        compile: bool | str = "auto",
        sw_device: torch.device | str | None = None,
        device: torch.device | str | None = None,
        progress: bool = True,
        buffer_steps: int | None = None,
        buffer_dim: int = -1,
        slab_dim: int = 0,
    ) -> None:
        super().__init__()
        _check(precision, output)
        if compile not in (True, False, "auto"):
            raise ValueError(f"compile must be True, False or 'auto', got {compile!r}.")
        if sw_batch_size < 1:
            raise ValueError(f"sw_batch_size must be >= 1, got {sw_batch_size}.")
        self.roi_size = roi_size
        self.sw_batch_size = sw_batch_size
        self.overlap = overlap
        self.mode = mode
        self.sigma_scale = sigma_scale
        self.padding_mode = padding_mode
        self.cval = cval
        self.precision = precision
        self.output = output
        self.flips = flips
        self.channels_last = channels_last
        self.compile = compile
        self.sw_device = sw_device
        self.device = device
        self.progress = progress
        self.buffer_steps = buffer_steps
        self.buffer_dim = buffer_dim
        self.slab_dim = slab_dim

    def settings(self) -> dict[str, Any]:
        """The keyword arguments given to :func:`~medst.inferers.utils.sliding_window_volume`, by name."""
        settings = {name: getattr(self, name) for name in _VOLUME_SETTINGS}
        settings["sw_device"] = _default_sw_device(self.sw_device)
        return settings

    def __call__(self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Segment ``inputs`` (B, C, *axes) with ``network``; extra arguments go to the network."""
        settings = self.settings()
        if clash := sorted(set(kwargs) & set(settings)):
            raise TypeError(f"VolumeInferer: network keyword(s) {clash} clash with the inferer's own settings")
        if not args:
            return sliding_window_volume(
                inputs, self.roi_size, self.sw_batch_size, network, **settings, **kwargs
            )
        # positional network arguments follow the settings in the signature: place each setting by its name
        ordered = [settings[name] for name in _VOLUME_SETTINGS]
        return sliding_window_volume(inputs, self.roi_size, self.sw_batch_size, network, *ordered, *args, **kwargs)


class StreamingInferer(Inferer):
    """Sliding window in space, streaming in time, for recurrent networks (ConvLSTM/ConvGRU family).

    A thin class over :func:`medst.inferers.utils.stream_sequence`: every spatial tile keeps its recurrent state
    from one ``time_chunk`` to the next, so a clip of any length is segmented with full temporal context and
    memory that does not grow with its length (Shi et al. 2015, https://arxiv.org/abs/1506.04214).

    Example::

        inferer = StreamingInferer(roi_size=(128, 128), time_chunk=16, overlap=0.25, output="labels")
        labels = inferer(video, network)  # video (B, C, T, H, W) -> (B, 1, T, H, W)
    """

    def __init__(
        self,
        roi_size: Sequence[int] | int,
        time_chunk: int = 16,
        overlap: Sequence[float] | float = 0.25,
        mode: str = "constant",
        sigma_scale: Sequence[float] | float = 0.125,
        padding_mode: str = "constant",
        cval: float = 0.0,
        sw_batch_size: int = 1,
        precision: str = "auto",
        output: str = "logits",
        sw_device: torch.device | str | None = None,
        device: torch.device | str | None = None,
        callback: Callable[[torch.Tensor, int], None] | None = None,
        progress: bool = True,
    ) -> None:
        super().__init__()
        _check(precision, output)
        if int(time_chunk) < 1:
            raise ValueError(f"time_chunk must be >= 1, got {time_chunk}.")
        self.roi_size = roi_size
        self.time_chunk = int(time_chunk)
        self.overlap = overlap
        self.mode = mode
        self.sigma_scale = sigma_scale
        self.padding_mode = padding_mode
        self.cval = cval
        self.sw_batch_size = sw_batch_size
        self.precision = precision
        self.output = output
        self.sw_device = sw_device
        self.device = device
        self.callback = callback
        self.progress = progress

    def __call__(
        self, inputs: torch.Tensor | Iterable[torch.Tensor], network: torch.nn.Module, *args: Any, **kwargs: Any
    ) -> torch.Tensor | None:
        """Segment ``inputs`` (B, C, T, *spatial), or an iterable of such blocks, with a streaming ``network``.

        A ``MetaTensor`` whose metadata carries a chunk position (``chunk_index``, ``last_chunk``, as
        :class:`medst.data.ChunkDataset` yields) is one chunk of a longer sequence: the tiles' recurrent states are
        kept from the previous chunk of the same source (and dropped after its last chunk), so that feeding a video
        chunk by chunk gives the labels of streaming it whole. The output is a ``MetaTensor`` with the input's
        metadata, as MONAI's inferers return.
        """
        if args or kwargs:
            raise ValueError("StreamingInferer passes no extra arguments to the network.")
        position = chunk_position(inputs)
        if position is not None:
            return self._stream_chunk(inputs, network, *position)
        out = stream_sequence(inputs, self.roi_size, self.time_chunk, network, **self.settings())
        return _with_meta(out, inputs)

    def settings(self) -> dict[str, Any]:
        """The keyword arguments given to :func:`~medst.inferers.utils.stream_sequence`, by name."""
        settings = {name: getattr(self, name) for name in _STREAM_SETTINGS}
        settings["sw_device"] = _default_sw_device(self.sw_device)
        return settings

    def _settings(self) -> dict[str, Any]:
        """The arguments of a :class:`~medst.inferers.utils.SequenceStreamer` (one chunk at a time: no callback)."""
        settings = {k: v for k, v in self.settings().items() if k not in ("callback", "progress")}
        return dict(settings, roi_size=self.roi_size, time_chunk=self.time_chunk)

    def _stream_chunk(self, inputs: MetaTensor, network: torch.nn.Module, source: str, index: int, last: bool):
        streams = self.__dict__.setdefault("_streams", {})
        if index == 0:
            streams[source] = (SequenceStreamer(network, **self._settings()), 0)
        elif source not in streams or streams[source][1] != index:
            expected = streams[source][1] if source in streams else 0
            streams.pop(source, None)
            raise ValueError(
                f"{source}: chunk {index} arrived, expected chunk {expected}: the chunks of one sequence must reach "
                "the StreamingInferer in order (a ChunkDataset with shuffle=False, batch_size=1)."
            )
        streamer, _ = streams[source]
        try:
            out = streamer.step(inputs)
        except BaseException:
            streams.pop(source, None)
            raise
        if last:
            streams.pop(source, None)
        else:
            streams[source] = (streamer, index + 1)
        if self.callback is not None:
            self.callback(out, streamer.frames - out.shape[2])
        return _with_meta(out, inputs)

    def reset(self) -> None:
        """Forget the recurrent states of every sequence that is part-way through."""
        self.__dict__.pop("_streams", None)


def _first(value: Any) -> Any:
    """The one value of a collated metadata entry (a batch of one)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"a chunked sequence needs batch_size=1, got a batch of {value.numel()}.")
        return value.item()
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(f"a chunked sequence needs batch_size=1, got a batch of {len(value)}.")
        return _first(value[0])
    if isinstance(value, np.ndarray):
        return value.reshape(-1)[0].item()
    return value


def chunk_position(inputs: Any) -> tuple[str, int, bool] | None:
    """(source, chunk index, last chunk?) from a chunk's metadata, or ``None`` when it is not a chunk."""
    meta = getattr(inputs, "meta", None)
    if not isinstance(inputs, MetaTensor) or not meta or "chunk_index" not in meta:
        return None
    source = str(_first(meta.get("filename_or_obj", "")))
    return source, int(_first(meta["chunk_index"])), bool(_first(meta.get("last_chunk", False)))


def _with_meta(out: torch.Tensor | None, inputs: Any) -> torch.Tensor | None:
    """``out`` as a ``MetaTensor`` with the metadata (and the transform trace) of ``inputs``."""
    if out is None or not isinstance(inputs, MetaTensor):
        return out
    result = MetaTensor(out, meta=inputs.meta, applied_operations=inputs.applied_operations)
    result.is_batch = inputs.is_batch
    return result


class AutocastInferer(Inferer):
    """MONAI's ``SimpleInferer`` under ``torch.autocast``, with float32 outputs: mixed-precision *training* on CPUs.

    MONAI's trainers autocast only on CUDA (``amp=True``); give this as a ``SupervisedTrainer``'s ``inferer`` to run
    the forward pass in bfloat16 on a CPU that computes it natively (the loss and the backward pass then see float32
    outputs; autocast keeps the weights float32). Measured on a 2-core AVX512-BF16 CPU
    (``benchmarks/bench_training_precision.py``, each variant a ``SupervisedTrainer.run()``): a training iteration
    of the Moving-MNIST ConvLSTM encoder-forecaster (batch 4) takes 0.64x the float32 CPU time, as fast as the same
    trainer run inside a one-line ``torch.autocast("cpu", dtype=torch.bfloat16)``, which however hands bfloat16
    predictions to the loss, the post-processing and the metrics; ``amp=True`` changes nothing on a CPU.

    ``precision``: ``"auto"`` is bfloat16 where the device computes it natively (a CPU with AVX512-BF16/AMX, a GPU
    with bfloat16), otherwise float32; ``"bf16"`` and ``"fp32"`` force one. float16 needs a gradient scaler, so
    ``"fp16"`` is refused here: on a GPU use the trainer's ``amp=True``.

    ``network_kwargs``: keyword arguments given to the network on every call (for instance
    ``{"return_context": True}`` to train :class:`medst.networks.nets.MotionForecaster` on the predictions of the
    observed frames as well); keywords given with the call override them.

    Bundle config::

        "inferer": {"_target_": "medst.inferers.AutocastInferer", "precision": "auto"}
    """

    def __init__(self, precision: str = "auto", network_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        if precision not in ("auto", "bf16", "fp32"):
            raise ValueError(
                f"precision must be 'auto', 'bf16' or 'fp32', got {precision!r} (for float16 training on a GPU use "
                "the trainer's amp=True, which scales the gradients)."
            )
        self.precision = precision
        self.network_kwargs = dict(network_kwargs or {})

    def dtype(self, device: torch.device | str) -> torch.dtype | None:
        """The autocast dtype used on ``device`` (``None``: float32)."""
        dtype = autocast_dtype(self.precision, device)
        return dtype if dtype is torch.bfloat16 else None

    def __call__(self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``network(inputs, *args, **network_kwargs, **kwargs)`` under autocast; floating outputs come back float32."""
        kwargs = {**self.network_kwargs, **kwargs}
        dtype = self.dtype(inputs.device)
        if dtype is None:
            return network(inputs, *args, **kwargs)
        return AutocastInference(network, dtype, inputs.device.type)(inputs, *args, **kwargs)


class MultiClipInferer(Inferer):
    """Classification from several clips per input, their softmax scores averaged: a thin class over
    :func:`medst.inferers.utils.multi_clip_inference` (see there for every argument), for a bundle's evaluator.

    Example::

        inferer = MultiClipInferer(clip_frames=8, num_clips=3)
        probs = inferer(video, network)  # (B, K)

    Bundle config::

        "inferer": {"_target_": "medst.inferers.MultiClipInferer", "clip_frames": 8, "num_clips": 3}
    """

    def __init__(self, clip_frames: int, num_clips: int = 3, axis: int = 0, average: str = "softmax",
                 clip_batch_size: int | None = None) -> None:
        super().__init__()
        if int(clip_frames) < 1 or int(num_clips) < 1:
            raise ValueError(f"clip_frames and num_clips must be >= 1, got {clip_frames} and {num_clips}.")
        self.clip_frames, self.num_clips, self.axis = int(clip_frames), int(num_clips), int(axis)
        self.average, self.clip_batch_size = average, clip_batch_size
        if average not in CLIP_AVERAGES:
            raise ValueError(f"average must be one of {CLIP_AVERAGES}, got {average!r}.")

    def __call__(self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any) -> torch.Tensor:
        """``(B, C, *axes)`` -> ``(B, K)``; extra arguments go to the network."""
        return multi_clip_inference(
            inputs, lambda x: network(x, *args, **kwargs), self.clip_frames, self.num_clips, self.axis,
            self.average, self.clip_batch_size,
        )


class AtlasPriorInferer(Inferer):
    """Inference for a network whose last input channel is a registered atlas brain mask (a shape prior).

    The atlas (:class:`medst.transforms.AtlasMaskPrior`'s head and brain mask) is registered to each scan of the
    batch, and the warped mask is appended to the scan's channels before ``inferer`` runs the network. When the
    prior tries two atlases (the whole head and the head masked to its brain, for inputs that may already be
    skull-stripped), a first pass runs the network with the constant "no prior" channel (``unknown_value``, as the
    network saw it in training, see :class:`medst.transforms.RandSimulatedPrior`), and the atlas whose warped mask
    agrees best with that first answer is used for the second pass, whose output is returned.

    Args:
        inferer: runs the network on the widened input (a :class:`VolumeInferer`, or any MONAI ``Inferer``).
        prior: a :class:`medst.transforms.AtlasMaskPrior` (its registration settings and atlases are used), or
            ``None``: one pass with the "no prior" channel, no registration (an ablation; less accurate).
        unknown_value: the "no prior" channel value of the first pass.
        label: the brain channel of the network's output (for the first pass's mask).

    Inputs are (B, C, X, Y, Z) MetaTensors with their affines (the registration needs the scans' geometry).
    """

    def __init__(self, inferer: Inferer, prior: Any | None, unknown_value: float = 0.5, label: int = 1) -> None:
        super().__init__()
        if not callable(inferer):
            raise TypeError(f"AtlasPriorInferer: inferer must be callable, got {type(inferer).__name__}")
        self.inferer, self.prior = inferer, prior
        self.unknown_value, self.label = float(unknown_value), int(label)

    @staticmethod
    def _item(inputs: MetaTensor, i: int) -> MetaTensor:
        affine = inputs.affine
        affine = affine[i] if affine.ndim == 3 else affine
        return MetaTensor(inputs[i].as_tensor(), affine=affine)

    def __call__(self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """The network's output for ``inputs`` widened by the warped atlas mask (see the class docstring)."""
        return self.inferer(self.widen(inputs, network, *args, **kwargs), network, *args, **kwargs)

    def widen(self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any) -> torch.Tensor:
        """``inputs`` with the prior channel appended: the network's input of the pass whose output is returned
        (this runs the first pass when there are two atlases)."""
        if inputs.ndim != 5:
            raise ValueError(f"AtlasPriorInferer: inputs must be (B, C, X, Y, Z), got shape {tuple(inputs.shape)}")
        references: list[Any] = [None] * inputs.shape[0]
        unknown = torch.full_like(inputs[:, :1], self.unknown_value)
        if self.prior is None:
            return torch.cat([inputs, unknown], 1)
        if not isinstance(inputs, MetaTensor):
            raise TypeError("AtlasPriorInferer: inputs must be a MetaTensor with the scans' affines (LoadImaged keeps it)")
        if len(self.prior.atlases()) > 1:
            first = self.inferer(torch.cat([inputs, unknown], 1), network, *args, **kwargs)
            references = list((first.argmax(1) == self.label).cpu().numpy())
        priors = [
            torch.as_tensor(self.prior.warped_mask(self._item(inputs, i), reference=ref), dtype=inputs.dtype)
            for i, ref in enumerate(references)
        ]
        return torch.cat([inputs, torch.stack(priors)[:, None].to(inputs.device)], 1)
