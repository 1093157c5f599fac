"""Temporal transforms for videos (C, T, H, W) and 4D scans (C, T, X, Y, Z): time is axis 1 after the channel.

MONAI loads a 4D NIfTI as (T, X, Y, Z) after ``EnsureChannelFirst`` (time in the channel slot), so MONAI's
spatial and intensity transforms act per frame there; :class:`ChannelToTime` then gives (1, T, X, Y, Z) for the
networks and :class:`TimeToChannel` goes back before ``SaveImage``.

Metadata kept consistent on a MetaTensor: ``fps``, ``time_spacing`` (seconds per frame) and ``num_frames``; and
when time is an axis of the affine (a video loaded by :class:`medst.data.VideoReader`, whose affine is
``diag(time_spacing, 1, 1, 1)``), the affine's time column (spacing and origin) as well. The affine of a 4D scan
covers only X, Y, Z and is left unchanged.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.data import MetaTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms import InvertibleTransform, Randomizable, Transform, reset_ops_id
from monai.utils import TransformBackends, convert_to_tensor

from medst.data.utils import MedstDataError

logger = logging.getLogger(__name__)

__all__ = [
    "ChannelToTime",
    "TimeToChannel",
    "TemporalCrop",
    "RandTemporalCrop",
    "TemporalStride",
    "TemporalPad",
    "RandTemporalFlip",
    "ResampleFrameRate",
    "NormalizeIntensityPerFrame",
    "PerFrame",
    "get_fps",
    "time_axis_in_affine",
]


# -------------------------------------------------------------------------------------------------- helpers


def _where(img: Any) -> str:
    name = img.meta.get("filename_or_obj") if isinstance(img, MetaTensor) else None
    return f" ({name})" if name else ""


def _check_temporal(img: Any, name: str, min_ndim: int = 3) -> None:
    if not hasattr(img, "ndim") or img.ndim < min_ndim:
        shape = tuple(getattr(img, "shape", ()))
        raise MedstDataError(
            f"{name} needs a channel-first array with time on axis 1, (C, T, H, W) or (C, T, X, Y, Z); got shape "
            f"{shape}{_where(img)}. A 4D NIfTI loads as (T, X, Y, Z): apply ChannelToTime first."
        )


def time_axis_in_affine(img: Any) -> bool:
    """Whether the affine of ``img`` (C, T, *spatial) includes the time axis, as a video's does."""
    if not isinstance(img, MetaTensor):
        return False
    aff = img.affine
    return aff.ndim == 2 and aff.shape[0] - 1 == img.ndim - 1


def get_fps(img: Any, default: float | None = None) -> float | None:
    """Frames per second from the metadata (``fps``, else ``1 / time_spacing``), or ``default``."""
    if isinstance(img, MetaTensor):
        meta = img.meta
        fps = meta.get("fps")
        if fps is not None and float(np.asarray(fps).reshape(-1)[0]) > 0:
            return float(np.asarray(fps).reshape(-1)[0])
        ts = meta.get("time_spacing")
        if ts is not None and float(np.asarray(ts).reshape(-1)[0]) > 0:
            return 1.0 / float(np.asarray(ts).reshape(-1)[0])
    return default


def _set_time_meta(
    out: Any, src: Any, num_frames: int, scale: float = 1.0, shift: float = 0.0, flip: bool = False
) -> Any:
    """Update ``out``'s metadata after a time change: frame i of ``out`` sits at source frame ``shift + scale*i``."""
    if not isinstance(out, MetaTensor) or not isinstance(src, MetaTensor):
        return out
    meta = dict(src.meta)
    meta["num_frames"] = int(num_frames)
    fps = get_fps(src)
    if scale != 1.0:
        if fps is not None:
            meta["fps"] = fps / scale
            meta["time_spacing"] = scale / fps
        elif "time_spacing" in meta:
            meta["time_spacing"] = float(np.asarray(meta["time_spacing"]).reshape(-1)[0]) * scale
    elif fps is not None and "fps" in meta:
        meta["fps"] = fps
    out.meta = meta
    if time_axis_in_affine(src):
        aff = src.affine.clone().to(torch.float64)
        col = aff[:, 0].clone()
        aff[:3, 3] = aff[:3, 3] + col[:3] * shift
        aff[:, 0] = col * (-scale if flip else scale)
        out.affine = aff
    return out


def _traced(img: Any) -> bool:
    return isinstance(img, MetaTensor) and get_track_meta()


_RATE_KEYS = ("fps", "time_spacing")


def _rate_meta(img: Any) -> dict[str, float]:
    """The frame-rate entries of ``img``'s metadata, to be restored exactly by an inverse."""
    if not isinstance(img, MetaTensor):
        return {}
    return {k: float(np.asarray(img.meta[k]).reshape(-1)[0]) for k in _RATE_KEYS if img.meta.get(k) is not None}


def _restore_rate_meta(out: Any, rate: dict[str, float]) -> Any:
    """Put back the frame-rate entries recorded by :func:`_rate_meta` (and drop those the input did not have)."""
    if isinstance(out, MetaTensor):
        for k in _RATE_KEYS:
            if k in rate:
                out.meta[k] = rate[k]
            else:
                out.meta.pop(k, None)
    return out


def _resample_time(img: torch.Tensor, n_out: int, step: float, mode: str) -> torch.Tensor:
    """Frames of ``img`` (C, T, *spatial) at source positions ``step * i``, i < ``n_out`` (nearest or linear)."""
    n = int(img.shape[1])
    pos = torch.arange(n_out, dtype=torch.float64) * step
    if mode == "nearest":
        return img[:, torch.clamp(torch.floor(pos + 0.5).long(), 0, n - 1)]
    if mode != "linear":
        raise ValueError(f"mode must be 'nearest' or 'linear', got {mode!r}")
    lo = torch.clamp(torch.floor(pos).long(), 0, n - 1)
    hi = torch.clamp(lo + 1, 0, n - 1)
    w = (pos - lo.to(torch.float64)).clamp(0, 1)
    shape = (1, n_out) + (1,) * (img.ndim - 2)
    w = w.to(img.dtype if img.is_floating_point() else torch.float32).reshape(shape)
    x = img if img.is_floating_point() else img.float()
    return x[:, lo] * (1 - w) + x[:, hi] * w


# ------------------------------------------------------------------------------------------------- 4D layout


class ChannelToTime(InvertibleTransform):
    """(T, X, Y, Z), a 4D scan as MONAI loads it (time in the channel slot) -> (1, T, X, Y, Z).

    ``time_spacing`` and ``num_frames`` are set in the metadata (``time_spacing`` comes from
    :class:`medst.data.NiftiTimeReader`, which keeps pixdim[4]). The inverse is :class:`TimeToChannel`.

    Args:
        channels: split the leading axis as (channels, T) when > 1 (e.g. 2 echoes interleaved by frame).
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, channels: int = 1) -> None:
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.channels = channels

    def __call__(self, img: NdarrayOrTensor) -> torch.Tensor:
        """img: (C*T, *spatial); returns (C, T, *spatial)."""
        img = convert_to_tensor(img, track_meta=get_track_meta())
        if img.ndim < 2:
            raise MedstDataError(f"ChannelToTime needs (T, *spatial), got shape {tuple(img.shape)}{_where(img)}")
        n = img.shape[0]
        if n % self.channels:
            raise MedstDataError(f"ChannelToTime: {n} frames do not split into {self.channels} channels{_where(img)}")
        out = img.reshape(self.channels, n // self.channels, *img.shape[1:])
        if isinstance(out, MetaTensor):
            out.meta = dict(img.meta)
            out.meta["num_frames"] = n // self.channels
            if _traced(out):
                self.push_transform(out, extra_info={"channels": self.channels})
        return out

    def inverse(self, data: torch.Tensor) -> torch.Tensor:
        if _traced(data):
            self.pop_transform(data)
        out = data.reshape(data.shape[0] * data.shape[1], *data.shape[2:])
        if isinstance(out, MetaTensor):
            out.meta = dict(data.meta)
        return out


class TimeToChannel(InvertibleTransform):
    """(C, T, X, Y, Z) -> (C*T, X, Y, Z): back to MONAI's 4D layout so ``SaveImage`` writes a 4D NIfTI.

    With C == 1 (a label map or a single probability map) the result is (T, X, Y, Z), which ``SaveImage`` writes
    as an X x Y x Z x T NIfTI with the input's affine and pixdim[4] (through :class:`medst.data.NiftiTimeWriter`).
    With C > 1 the channels are stacked channel-major, which is rarely what a file should hold: take the argmax
    first (set ``allow_channels=True`` to stack anyway).
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, allow_channels: bool = False) -> None:
        self.allow_channels = allow_channels

    def __call__(self, img: NdarrayOrTensor) -> torch.Tensor:
        """img: (C, T, *spatial); returns (C*T, *spatial)."""
        img = convert_to_tensor(img, track_meta=get_track_meta())
        _check_temporal(img, "TimeToChannel")
        if img.shape[0] != 1 and not self.allow_channels:
            raise MedstDataError(
                f"TimeToChannel: {img.shape[0]} channels would be mixed with {img.shape[1]} frames{_where(img)}; "
                "reduce to one channel first (AsDiscrete(argmax=True)) or pass allow_channels=True"
            )
        out = img.reshape(img.shape[0] * img.shape[1], *img.shape[2:])
        if isinstance(out, MetaTensor):
            out.meta = dict(img.meta)
            out.meta["num_frames"] = int(img.shape[1])
            if _traced(out):
                self.push_transform(out, extra_info={"channels": int(img.shape[0])})
        return out

    def inverse(self, data: torch.Tensor) -> torch.Tensor:
        channels = 1
        if _traced(data):
            channels = self.pop_transform(data)["extra_info"]["channels"]
        out = data.reshape(channels, data.shape[0] // channels, *data.shape[1:])
        if isinstance(out, MetaTensor):
            out.meta = dict(data.meta)
        return out


# ------------------------------------------------------------------------------------------------ cropping


class TemporalCrop(InvertibleTransform):
    """Keep frames ``start <= t < end`` of (C, T, *spatial); Python slice semantics (negative indices count from
    the end, ``end=None`` is the end). The inverse pads the removed frames back with zeros.

    Args:
        start: first frame kept.
        end: frame to stop before (exclusive).
        num_frames: keep this many frames from ``start`` (instead of ``end``).
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, start: int = 0, end: int | None = None, num_frames: int | None = None) -> None:
        if end is not None and num_frames is not None:
            raise ValueError("give either end or num_frames, not both")
        if num_frames is not None and num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        self.start, self.end, self.num_frames = start, end, num_frames

    def _bounds(self, n: int) -> tuple[int, int]:
        end = self.end
        if self.num_frames is not None:
            end = (self.start % n if self.start < 0 else self.start) + self.num_frames
        s, e, _ = slice(self.start, end).indices(n)
        return s, e

    def __call__(self, img: NdarrayOrTensor, start: int | None = None, end: int | None = None) -> torch.Tensor:
        """img: (C, T, *spatial) -> (C, end - start, *spatial)."""
        img = convert_to_tensor(img, track_meta=get_track_meta())
        _check_temporal(img, type(self).__name__)
        n = int(img.shape[1])
        s, e = (start, end) if start is not None else self._bounds(n)
        if e - s < 1:
            raise MedstDataError(f"{type(self).__name__}: empty crop [{s}, {e}) of {n} frames{_where(img)}")
        if self.num_frames is not None and start is None and e - s < self.num_frames:
            raise MedstDataError(
                f"{type(self).__name__}: asked for {self.num_frames} frames from {s} but there are {n}{_where(img)}; "
                "pad first with TemporalPad(min_frames=...)"
            )
        out = img[:, s:e]
        out = _set_time_meta(out, img, e - s, shift=float(s))
        if _traced(out):
            self.push_transform(out, orig_size=(n,), extra_info={"start": s, "end": e})
        return out

    def inverse(self, data: torch.Tensor) -> torch.Tensor:
        """Pad the removed frames back with zeros (and drop the frames a padded crop added): ``orig_size`` frames."""
        info = self.pop_transform(data)
        n = int(info["orig_size"][0])
        extra = info["extra_info"]
        s, e = int(extra["start"]), int(extra["end"])
        padded = int(extra.get("padded", n))  # RandTemporalCrop(pad=True): the clip was padded to this first
        out = _pad_time(data, (s, max(0, padded - e)), "constant", 0.0)[:, :n]
        return _set_time_meta(out, data, n, shift=-float(s))


class RandTemporalCrop(Randomizable, TemporalCrop):
    """A random window of ``num_frames`` consecutive frames of (C, T, *spatial) (a training clip).

    Args:
        num_frames: clip length.
        random_start: when False, the clip is centred.
        pad: pad clips shorter than ``num_frames`` at the end (with ``pad_mode``) instead of raising. The inverse
            gives back the original number of frames (one record on the MetaTensor, the padding included).
        pad_mode: "constant" (zeros), "edge" (repeat the last frame) or "wrap".
    """

    def __init__(self, num_frames: int, random_start: bool = True, pad: bool = False, pad_mode: str = "constant"
                 ) -> None:
        super().__init__(num_frames=num_frames)
        self.random_start, self.pad, self.pad_mode = random_start, pad, pad_mode
        self._start = 0

    def randomize(self, data: int) -> None:
        """data: the number of frames T."""
        room = max(0, int(data) - self.num_frames)
        self._start = int(self.R.randint(0, room + 1)) if self.random_start else room // 2

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True, pad_mode: str | None = None) -> torch.Tensor:
        """img: (C, T, *spatial) -> (C, num_frames, *spatial); ``pad_mode`` overrides the constructor's."""
        img = convert_to_tensor(img, track_meta=get_track_meta())
        _check_temporal(img, type(self).__name__)
        n0 = n = int(img.shape[1])
        if n < self.num_frames:
            if not self.pad:
                raise MedstDataError(
                    f"RandTemporalCrop: {n} frames is fewer than num_frames={self.num_frames}{_where(img)}; "
                    "pass pad=True or use TemporalPad(min_frames=...) first"
                )
            padded = _pad_time(img, (0, self.num_frames - n), pad_mode or self.pad_mode, 0.0)
            img = _set_time_meta(padded, img, self.num_frames) if isinstance(img, MetaTensor) else padded
            n = self.num_frames
        if randomize:
            self.randomize(n)
        s, e = self._start, self._start + self.num_frames
        out = img[:, s:e]
        out = _set_time_meta(out, img, e - s, shift=float(s))
        if _traced(out) and self.tracing:
            self.push_transform(out, orig_size=(n0,), extra_info={"start": s, "end": e, "padded": n})
        return out


class TemporalStride(InvertibleTransform):
    """Keep every ``stride``-th frame of (C, T, *spatial) from ``offset``; fps is divided by ``stride``.

    The inverse is lossy: it gives back the original number of frames, each a copy of the nearest kept frame,
    and the original frame rate (``fps``, ``time_spacing``; a video's affine).
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, stride: int, offset: int = 0) -> None:
        if stride < 1 or offset < 0:
            raise ValueError(f"stride must be >= 1 and offset >= 0, got stride={stride}, offset={offset}")
        self.stride, self.offset = stride, offset

    def __call__(self, img: NdarrayOrTensor) -> torch.Tensor:
        img = convert_to_tensor(img, track_meta=get_track_meta())
        _check_temporal(img, "TemporalStride")
        if self.offset >= img.shape[1]:
            raise MedstDataError(f"TemporalStride: offset {self.offset} >= {img.shape[1]} frames{_where(img)}")
        n = int(img.shape[1])
        out = img[:, self.offset :: self.stride]
        out = _set_time_meta(out, img, out.shape[1], scale=float(self.stride), shift=float(self.offset))
        if _traced(out) and self.tracing:
            self.push_transform(
                out,
                orig_size=(n,),
                extra_info={"stride": self.stride, "offset": self.offset, "rate": _rate_meta(img)},
            )
        return out

    def inverse(self, data: torch.Tensor) -> torch.Tensor:
        """(C, T', *spatial) -> (C, T, *spatial): original frame j is the kept frame nearest to it."""
        info = self.pop_transform(data)
        n, extra = int(info["orig_size"][0]), info["extra_info"]
        stride, offset = int(extra["stride"]), int(extra["offset"])
        pos = (torch.arange(n, dtype=torch.float64) - offset) / stride
        idx = torch.clamp(torch.floor(pos + 0.5).long(), 0, int(data.shape[1]) - 1)
        out = data[:, idx]
        out = _set_time_meta(out, data, n, scale=1.0 / stride, shift=-float(offset) / stride)
        return _restore_rate_meta(out, extra["rate"])


def _pad_time(img: torch.Tensor, pad: tuple[int, int], mode: str, value: float) -> torch.Tensor:
    before, after = pad
    parts = []
    if mode == "constant":
        if before:
            parts.append(torch.full_like(img[:, :1], value).expand(-1, before, *img.shape[2:]))
        parts.append(img)
        if after:
            parts.append(torch.full_like(img[:, :1], value).expand(-1, after, *img.shape[2:]))
    elif mode == "edge":
        if before:
            parts.append(img[:, :1].expand(-1, before, *img.shape[2:]))
        parts.append(img)
        if after:
            parts.append(img[:, -1:].expand(-1, after, *img.shape[2:]))
    elif mode == "wrap":
        reps = math.ceil((before + after) / img.shape[1]) + 2
        tiled = torch.cat([img] * reps, 1)
        start = img.shape[1] * (reps // 2) - before
        parts.append(tiled[:, start : start + before + img.shape[1] + after])
    else:
        raise ValueError(f"mode must be 'constant', 'edge' or 'wrap', got {mode!r}")
    out = torch.cat([p.contiguous() for p in parts], 1) if len(parts) > 1 else parts[0]
    return out


class TemporalPad(InvertibleTransform):
    """Pad the time axis of (C, T, *spatial) to at least ``min_frames`` and/or a multiple of ``multiple``.

    Args:
        min_frames: the least number of frames.
        multiple: T becomes a multiple of this (e.g. a network's temporal down-sampling factor).
        mode: "constant" (``value``), "edge" (repeat the end frames) or "wrap" (loop the clip).
        side: "end" or "both" (split the padding, the extra frame at the end).
        value: the constant.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, min_frames: int | None = None, multiple: int | None = None, mode: str = "constant",
                 side: str = "end", value: float = 0.0) -> None:
        if min_frames is None and multiple is None:
            raise ValueError("give min_frames and/or multiple")
        if (min_frames is not None and min_frames < 1) or (multiple is not None and multiple < 1):
            raise ValueError(f"min_frames and multiple must be >= 1, got {min_frames}, {multiple}")
        if mode not in ("constant", "edge", "wrap") or side not in ("end", "both"):
            raise ValueError(f"mode must be constant|edge|wrap and side end|both, got {mode!r}, {side!r}")
        self.min_frames, self.multiple, self.mode, self.side, self.value = min_frames, multiple, mode, side, value

    def target(self, n: int) -> int:
        t = max(n, self.min_frames or 0)
        if self.multiple:
            t = int(math.ceil(t / self.multiple) * self.multiple)
        return t

    def __call__(self, img: NdarrayOrTensor, mode: str | None = None, value: float | None = None) -> torch.Tensor:
        """img: (C, T, *spatial); ``mode`` and ``value`` override the constructor's (per key in ``TemporalPadd``)."""
        img = convert_to_tensor(img, track_meta=get_track_meta())
        _check_temporal(img, "TemporalPad")
        n = int(img.shape[1])
        total = self.target(n) - n
        before = total // 2 if self.side == "both" else 0
        mode = self.mode if mode is None else mode
        out = _pad_time(img, (before, total - before), mode, self.value if value is None else value)
        out = _set_time_meta(out, img, out.shape[1], shift=-float(before))
        if _traced(out) and self.tracing:
            self.push_transform(out, orig_size=(n,), extra_info={"before": before})
        return out

    def inverse(self, data: torch.Tensor) -> torch.Tensor:
        info = self.pop_transform(data)
        n, before = int(info["orig_size"][0]), int(info["extra_info"]["before"])
        out = data[:, before : before + n]
        return _set_time_meta(out, data, n, shift=float(before))


class RandTemporalFlip(Randomizable, InvertibleTransform):
    """Reverse the frame order of (C, T, *spatial) with probability ``prob`` (a time-reversal augmentation)."""

    backend = [TransformBackends.TORCH]

    def __init__(self, prob: float = 0.5) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob}")
        self.prob = prob
        self._do = False

    def randomize(self, data: Any = None) -> None:
        self._do = bool(self.R.rand() < self.prob)

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> torch.Tensor:
        img = convert_to_tensor(img, track_meta=get_track_meta())
        _check_temporal(img, "RandTemporalFlip")
        if randomize:
            self.randomize()
        out = torch.flip(img, (1,)) if self._do else img.clone()
        if self._do:
            out = _set_time_meta(out, img, out.shape[1], shift=float(img.shape[1] - 1), flip=True)
        if _traced(out):
            self.push_transform(out, extra_info={"flipped": self._do})
        return out

    def inverse(self, data: torch.Tensor) -> torch.Tensor:
        info = self.pop_transform(data)
        if not info["extra_info"]["flipped"]:
            return data
        out = torch.flip(data, (1,))
        return _set_time_meta(out, data, out.shape[1], shift=float(data.shape[1] - 1), flip=True)


# -------------------------------------------------------------------------------------------- resampling


class ResampleFrameRate(InvertibleTransform):
    """Resample (C, T, *spatial) in time to ``fps`` frames per second.

    The source rate comes from the metadata (``fps``, else ``1 / time_spacing``) or ``source_fps``. Output frame
    ``i`` is taken at time ``i / fps``, so the clip keeps its duration: ``T_out = max(1, round(T * fps / src))``.
    ``mode="nearest"`` (labels) picks the nearest source frame; ``"linear"`` blends the two neighbours.
    ``fps``, ``time_spacing``, ``num_frames`` (and a video's affine) are updated.

    The inverse resamples back to the source rate with the recorded ``mode`` (``Invertd(nearest_interp=True)``
    makes it nearest, as for MONAI's spatial transforms): the original number of frames and the original ``fps``
    / ``time_spacing``; the frames themselves are only as good as the rate they were resampled to.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, fps: float, mode: str = "nearest", source_fps: float | None = None) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if mode not in ("nearest", "linear"):
            raise ValueError(f"mode must be 'nearest' or 'linear', got {mode!r}")
        self.fps, self.mode, self.source_fps = float(fps), mode, source_fps

    def __call__(self, img: NdarrayOrTensor, source_fps: float | None = None, mode: str | None = None
                 ) -> torch.Tensor:
        """img: (C, T, *spatial); ``mode`` overrides the constructor's (per key in ``ResampleFrameRated``)."""
        img = convert_to_tensor(img, track_meta=get_track_meta())
        _check_temporal(img, "ResampleFrameRate")
        mode = self.mode if mode is None else mode
        src = source_fps or self.source_fps or get_fps(img)
        if not src:
            raise MedstDataError(
                f"ResampleFrameRate: no source frame rate (meta 'fps' or 'time_spacing'){_where(img)}; "
                "pass source_fps="
            )
        n = int(img.shape[1])
        n_out = max(1, int(round(n * self.fps / src)))
        out = _resample_time(img, n_out, src / self.fps, mode)
        out = _set_time_meta(out, img, n_out, scale=src / self.fps)
        if isinstance(out, MetaTensor):  # exact target rate, not src / (src / fps)
            out.meta["fps"] = self.fps
            out.meta["time_spacing"] = 1.0 / self.fps
        if _traced(out) and self.tracing:
            self.push_transform(
                out,
                orig_size=(n,),
                extra_info={"mode": mode, "source_fps": float(src), "fps": self.fps, "rate": _rate_meta(img)},
            )
        return out

    def inverse(self, data: torch.Tensor) -> torch.Tensor:
        """Back to the source frame rate and number of frames (with the recorded, or Invertd's, ``mode``)."""
        info = self.pop_transform(data)
        n, extra = int(info["orig_size"][0]), info["extra_info"]
        step = float(extra["fps"]) / float(extra["source_fps"])
        out = _resample_time(data, n, step, str(extra["mode"]))
        out = _set_time_meta(out, data, n, scale=step)
        return _restore_rate_meta(out, extra["rate"])


class NormalizeIntensityPerFrame(Transform):
    """Zero mean, unit variance per frame (and per channel when ``channel_wise``) of (C, T, *spatial).

    A frame whose standard deviation is zero is only centred. With ``nonzero`` only the non-zero voxels are used
    and changed. Returns float32 (or the input's floating type).
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, channel_wise: bool = True, nonzero: bool = False, eps: float = 1e-8) -> None:
        self.channel_wise, self.nonzero, self.eps = channel_wise, nonzero, eps

    def __call__(self, img: NdarrayOrTensor) -> torch.Tensor:
        img = convert_to_tensor(img, track_meta=get_track_meta())
        _check_temporal(img, "NormalizeIntensityPerFrame")
        x = img if img.is_floating_point() else img.float()
        dims = tuple(range(2, x.ndim)) if self.channel_wise else (0,) + tuple(range(2, x.ndim))
        if self.nonzero:
            mask = (x != 0).to(x.dtype)
            cnt = mask.sum(dims, keepdim=True).clamp_min(1)
            mean = (x * mask).sum(dims, keepdim=True) / cnt
            var = (((x - mean) * mask) ** 2).sum(dims, keepdim=True) / cnt
        else:
            mean = x.mean(dims, keepdim=True)
            var = x.var(dims, keepdim=True, unbiased=False)
        std = var.sqrt()
        std = torch.where(std > self.eps, std, torch.ones_like(std))
        out = (x - mean) / std
        if self.nonzero:
            out = torch.where(x != 0, out, x)
        return out


class PerFrame(Randomizable, InvertibleTransform):
    """Apply a channel-first transform made for one frame to every frame of (C, T, *spatial).

    The frame given to ``transform`` is (C, *spatial) with its own metadata: a 4D scan's frames keep the scan's
    affine (which already covers X, Y, Z only); a video's frame gets the affine without the time row and column,
    and the time axis is put back afterwards. All frames must come out with the same shape.

    Invertible as MONAI's ``Lambda`` is: the records the wrapped transform leaves on a frame (``Spacing``'s, say)
    are kept in this transform's record, and the inverse gives each frame to ``transform.inverse``, so ``Invertd``
    resamples a prediction back frame by frame. When the wrapped transform is not invertible the inverse is the
    identity (with a warning when the transform changed the frame shape).

    Args:
        transform: a MONAI-style callable on (C, *spatial).
        same_random: for a ``Randomizable`` transform, draw its random parameters once and use them for every frame
            (a consistent augmentation of a clip); False draws them per frame.
    """

    def __init__(self, transform: Callable, same_random: bool = True) -> None:
        if not callable(transform):
            raise ValueError("PerFrame needs a callable transform")
        self.transform, self.same_random = transform, same_random

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> PerFrame:
        """Seed this wrapper and the wrapped transform (so ``Compose(...).set_random_state`` reaches it)."""
        super().set_random_state(seed, state)
        if isinstance(self.transform, Randomizable):
            self.transform.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        """The wrapped transform draws its own parameters."""

    @staticmethod
    def _frame(img: Any, t: int, video: bool) -> Any:
        frame = img[:, t]
        if isinstance(img, MetaTensor):
            frame = MetaTensor(frame.as_tensor() if isinstance(frame, MetaTensor) else frame, meta=dict(img.meta))
            frame.meta.pop("applied_operations", None)
            frame.applied_operations = []
            frame.affine = img.affine.clone()[1:, 1:] if video else img.affine.clone()
        return frame

    @staticmethod
    def _stack(frames: list, img: Any, meta_out: dict | None, video: bool) -> torch.Tensor:
        shapes = {tuple(f.shape) for f in frames}
        if len(shapes) > 1:
            raise MedstDataError(f"PerFrame: the transform gave frames of different shapes {sorted(shapes)}")
        out = torch.stack(frames, 1)
        if not (isinstance(img, MetaTensor) and get_track_meta()):
            return out
        meta = dict(meta_out) if meta_out is not None else dict(img.meta)
        meta.pop("applied_operations", None)
        out = MetaTensor(out, meta=meta, applied_operations=list(img.applied_operations))
        if video and meta_out is not None:
            aff3 = torch.as_tensor(meta_out["affine"], dtype=torch.float64)
            orig = img.affine.to(torch.float64)
            aff = torch.eye(aff3.shape[0] + 1, dtype=torch.float64)
            aff[1:, 1:] = aff3
            aff[0, 0] = orig[0, 0]
            aff[0, -1] = orig[0, -1]
            out.affine = aff
        elif meta_out is None:
            out.affine = img.affine
        return out

    def __call__(self, img: NdarrayOrTensor) -> torch.Tensor:
        img = convert_to_tensor(img, track_meta=get_track_meta())
        _check_temporal(img, "PerFrame")
        video = time_axis_in_affine(img)
        rand = isinstance(self.transform, Randomizable) and self.same_random
        # a random transform may hold other random transforms (RandAffine holds a RandAffineGrid): copy the whole
        # transform so every frame starts from the same random states
        proto = copy.deepcopy(self.transform) if rand else None
        transform = self.transform
        frames, meta_out, frame_ops = [], None, []
        for t in range(img.shape[1]):
            if rand:
                transform = copy.deepcopy(proto)
            out_t = transform(self._frame(img, t, video))
            ops: list = []
            if isinstance(out_t, MetaTensor):
                meta_out = dict(out_t.meta)
                ops = list(out_t.applied_operations)
                out_t = out_t.as_tensor()
            frame_ops.append(ops)
            frames.append(convert_to_tensor(out_t, track_meta=False))
        if rand:
            self.transform = transform  # its random state has advanced by one draw
        out = self._stack(frames, img, meta_out, video)
        if _traced(out) and self.tracing:
            per_frame = isinstance(self.transform, Randomizable) and not self.same_random
            self.push_transform(
                out,
                orig_size=tuple(int(v) for v in img.shape[2:]),
                extra_info={"frame_ops": frame_ops if per_frame else frame_ops[:1], "video": video},
            )
        return out

    def inverse(self, data: torch.Tensor) -> torch.Tensor:
        """Invert the wrapped transform on every frame from the records it left (identity when it left none)."""
        info = self.pop_transform(data)
        extra = info["extra_info"]
        frame_ops, video = extra["frame_ops"], bool(extra["video"])
        if not any(frame_ops) or not isinstance(self.transform, InvertibleTransform):
            orig = tuple(int(v) for v in info["orig_size"])
            if tuple(data.shape[2:]) != orig:
                logger.warning(
                    "PerFrame.inverse: %s is not invertible; frames stay %s (were %s)",
                    type(self.transform).__name__, tuple(data.shape[2:]), orig,
                )
            return data
        frames, meta_out = [], None
        for t in range(data.shape[1]):
            frame = self._frame(data, t, video)
            ops = frame_ops[t] if len(frame_ops) > 1 else frame_ops[0]
            # the records name the instance that pushed them (for a random transform, a per-frame copy; nested
            # records too): MONAI's reset_ops_id lets any instance of the transform pop them
            frame.applied_operations = reset_ops_id(copy.deepcopy(list(ops)))
            out_t = self.transform.inverse(frame)
            if isinstance(out_t, MetaTensor):
                meta_out = dict(out_t.meta)
                out_t = out_t.as_tensor()
            frames.append(convert_to_tensor(out_t, track_meta=False))
        return self._stack(frames, data, meta_out, video)
