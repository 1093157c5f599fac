"""Dictionary versions of :mod:`medst.transforms.temporal.array`, one class per array transform, as in MONAI.

Arguments that may differ between keys (an interpolation or padding mode: linear for an image, nearest for its
label) take one value or one per key (``ensure_tuple_rep``). Only the transforms with an inverse are
``InvertibleTransform`` s, so ``Compose.inverse`` and ``Invertd`` skip the others (``NormalizeIntensityPerFramed``).
Random ones draw their parameters once per call (from the first key's data) and apply them to every key, so an
image and its label stay aligned in time; their seed is passed to the inner transform.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from monai.config import KeysCollection
from monai.transforms import InvertibleTransform, MapTransform, Randomizable
from monai.utils import ensure_tuple_rep

from .array import (
    ChannelToTime,
    NormalizeIntensityPerFrame,
    PerFrame,
    RandTemporalCrop,
    RandTemporalFlip,
    ResampleFrameRate,
    TemporalCrop,
    TemporalPad,
    TemporalStride,
    TimeToChannel,
)

__all__ = [
    "ChannelToTimed",
    "TimeToChanneld",
    "TemporalCropd",
    "RandTemporalCropd",
    "TemporalStrided",
    "TemporalPadd",
    "RandTemporalFlipd",
    "ResampleFrameRated",
    "NormalizeIntensityPerFramed",
    "PerFramed",
    "ChannelToTimeD",
    "ChannelToTimeDict",
    "TimeToChannelD",
    "TimeToChannelDict",
    "TemporalCropD",
    "TemporalCropDict",
    "RandTemporalCropD",
    "RandTemporalCropDict",
    "TemporalStrideD",
    "TemporalStrideDict",
    "TemporalPadD",
    "TemporalPadDict",
    "RandTemporalFlipD",
    "RandTemporalFlipDict",
    "ResampleFrameRateD",
    "ResampleFrameRateDict",
    "NormalizeIntensityPerFrameD",
    "NormalizeIntensityPerFrameDict",
    "PerFrameD",
    "PerFrameDict",
]


class ChannelToTimed(MapTransform, InvertibleTransform):
    """Dictionary :class:`~medst.transforms.ChannelToTime`: (T, X, Y, Z) -> (1, T, X, Y, Z) for each key."""

    backend = ChannelToTime.backend

    def __init__(self, keys: KeysCollection, channels: int = 1, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.converter = ChannelToTime(channels)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.converter(d[key])
        return d

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.converter.inverse(d[key])
        return d


class TimeToChanneld(MapTransform, InvertibleTransform):
    """Dictionary :class:`~medst.transforms.TimeToChannel`: (1, T, X, Y, Z) -> (T, X, Y, Z) for each key."""

    backend = TimeToChannel.backend

    def __init__(self, keys: KeysCollection, allow_channels: bool = False, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.converter = TimeToChannel(allow_channels)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.converter(d[key])
        return d

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.converter.inverse(d[key])
        return d


class TemporalCropd(MapTransform, InvertibleTransform):
    """Dictionary :class:`~medst.transforms.TemporalCrop`: the same frames of every key."""

    backend = TemporalCrop.backend

    def __init__(self, keys: KeysCollection, start: int = 0, end: int | None = None, num_frames: int | None = None,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.cropper = TemporalCrop(start, end, num_frames)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.cropper(d[key])
        return d

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.cropper.inverse(d[key])
        return d


class TemporalStrided(MapTransform, InvertibleTransform):
    """Dictionary :class:`~medst.transforms.TemporalStride`; the (lossy) inverse restores the frame count and rate."""

    backend = TemporalStride.backend

    def __init__(self, keys: KeysCollection, stride: int, offset: int = 0, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.strider = TemporalStride(stride, offset)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.strider(d[key])
        return d

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.strider.inverse(d[key])
        return d


class TemporalPadd(MapTransform, InvertibleTransform):
    """Dictionary :class:`~medst.transforms.TemporalPad`.

    Args:
        keys: keys of the arrays to pad.
        min_frames, multiple, side: as :class:`~medst.transforms.TemporalPad`; the same target for every key.
        mode: one padding mode or one per key (e.g. ``("edge", "constant")``: repeat an image's end frames, pad
            its label with background).
        value: the constant, one or one per key.
    """

    backend = TemporalPad.backend

    def __init__(self, keys: KeysCollection, min_frames: int | None = None, multiple: int | None = None,
                 mode: str | Sequence[str] = "constant", side: str = "end", value: float | Sequence[float] = 0.0,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.mode = ensure_tuple_rep(mode, len(self.keys))
        self.value = ensure_tuple_rep(value, len(self.keys))
        self.padder = TemporalPad(min_frames, multiple, self.mode[0], side, float(self.value[0]))
        for m in self.mode:  # validate each key's mode now, not on the first call
            TemporalPad(min_frames, multiple, m, side)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key, mode, value in self.key_iterator(d, self.mode, self.value):
            d[key] = self.padder(d[key], mode=mode, value=float(value))
        return d

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.padder.inverse(d[key])
        return d


class ResampleFrameRated(MapTransform, InvertibleTransform):
    """Dictionary :class:`~medst.transforms.ResampleFrameRate`; ``mode`` is one name or one per key (use
    ``"nearest"`` for labels). ``Invertd`` brings a prediction back to the source frame count and frame rate."""

    backend = ResampleFrameRate.backend

    def __init__(self, keys: KeysCollection, fps: float, mode: str | Sequence[str] = "nearest",
                 source_fps: float | None = None, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.mode = ensure_tuple_rep(mode, len(self.keys))
        for m in self.mode:
            ResampleFrameRate(fps, m)  # validates each key's mode
        self.resampler = ResampleFrameRate(fps, self.mode[0], source_fps)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key, mode in self.key_iterator(d, self.mode):
            d[key] = self.resampler(d[key], mode=mode)
        return d

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.resampler.inverse(d[key])
        return d


class NormalizeIntensityPerFramed(MapTransform):
    """Dictionary :class:`~medst.transforms.NormalizeIntensityPerFrame` (no inverse: ``Invertd`` skips it)."""

    backend = NormalizeIntensityPerFrame.backend

    def __init__(self, keys: KeysCollection, channel_wise: bool = True, nonzero: bool = False, eps: float = 1e-8,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.normalizer = NormalizeIntensityPerFrame(channel_wise, nonzero, eps)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.normalizer(d[key])
        return d


class PerFramed(Randomizable, MapTransform, InvertibleTransform):
    """Dictionary :class:`~medst.transforms.PerFrame`: apply a one-frame transform to every frame of each key.

    ``transform`` is an array transform on (C, *spatial); with ``same_random`` a random one uses the same draw for
    every frame and every key. One transform serves all keys, so its interpolation mode is shared: for an image
    and a label that need different modes, use two ``PerFramed`` with the same seed. The inverse inverts the
    wrapped transform frame by frame (``PerFramed(keys, Spacing(...))`` under ``Invertd`` resamples a prediction
    back to the input's grid).
    """

    def __init__(self, keys: KeysCollection, transform: Callable, same_random: bool = True,
                 allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.per_frame = PerFrame(transform, same_random)

    def set_random_state(self, seed: int | None = None, state=None) -> PerFramed:
        super().set_random_state(seed, state)
        self.per_frame.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        """The wrapped transform draws its own parameters."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        rand = isinstance(self.per_frame.transform, Randomizable) and self.per_frame.same_random
        proto = copy.deepcopy(self.per_frame.transform) if rand else None
        for key in self.key_iterator(d):
            if rand:  # every key gets the same draw (an image and its label stay aligned)
                self.per_frame.transform = copy.deepcopy(proto)
            d[key] = self.per_frame(d[key])
        return d

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.per_frame.inverse(d[key])
        return d


class RandTemporalCropd(Randomizable, MapTransform, InvertibleTransform):
    """Dictionary :class:`~medst.transforms.RandTemporalCrop`: the same clip of ``num_frames`` for every key.

    ``pad_mode`` is one mode or one per key (``pad=True``: clips shorter than ``num_frames`` are padded first).
    """

    backend = RandTemporalCrop.backend

    def __init__(self, keys: KeysCollection, num_frames: int, random_start: bool = True, pad: bool = False,
                 pad_mode: str | Sequence[str] = "constant", allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.pad_mode = ensure_tuple_rep(pad_mode, len(self.keys))
        self.cropper = RandTemporalCrop(num_frames, random_start, pad, self.pad_mode[0])

    def set_random_state(self, seed: int | None = None, state=None) -> RandTemporalCropd:
        super().set_random_state(seed, state)
        self.cropper.set_random_state(seed, state)
        return self

    def randomize(self, data: int) -> None:
        self.cropper.randomize(data)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        first = self.first_key(d)
        if first == ():
            return d
        self.randomize(max(int(d[first].shape[1]), self.cropper.num_frames))
        for key, pad_mode in self.key_iterator(d, self.pad_mode):
            d[key] = self.cropper(d[key], randomize=False, pad_mode=pad_mode)
        return d

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.cropper.inverse(d[key])
        return d


class RandTemporalFlipd(Randomizable, MapTransform, InvertibleTransform):
    """Dictionary :class:`~medst.transforms.RandTemporalFlip`: one draw for all keys."""

    backend = RandTemporalFlip.backend

    def __init__(self, keys: KeysCollection, prob: float = 0.5, allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.flipper = RandTemporalFlip(prob)

    def set_random_state(self, seed: int | None = None, state=None) -> RandTemporalFlipd:
        super().set_random_state(seed, state)
        self.flipper.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        self.flipper.randomize()

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize()
        for key in self.key_iterator(d):
            d[key] = self.flipper(d[key], randomize=False)
        return d

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.flipper.inverse(d[key])
        return d


ChannelToTimeD = ChannelToTimeDict = ChannelToTimed
TimeToChannelD = TimeToChannelDict = TimeToChanneld
TemporalCropD = TemporalCropDict = TemporalCropd
RandTemporalCropD = RandTemporalCropDict = RandTemporalCropd
TemporalStrideD = TemporalStrideDict = TemporalStrided
TemporalPadD = TemporalPadDict = TemporalPadd
RandTemporalFlipD = RandTemporalFlipDict = RandTemporalFlipd
ResampleFrameRateD = ResampleFrameRateDict = ResampleFrameRated
NormalizeIntensityPerFrameD = NormalizeIntensityPerFrameDict = NormalizeIntensityPerFramed
PerFrameD = PerFrameDict = PerFramed
