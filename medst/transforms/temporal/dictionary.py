"""Dictionary versions of :mod:`medst.transforms.temporal.array`: each wraps one array transform.

Random ones draw their parameters once per call (from the first key's data) and apply them to every key, so an
image and its label stay aligned in time; their seed is passed to the inner transform.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from monai.config import KeysCollection
from monai.transforms import InvertibleTransform, MapTransform, Randomizable

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
]


class _Wrapd(MapTransform, InvertibleTransform):
    """Apply ``self.t`` to every key; invert it per key when the inner transform is invertible."""

    t: Any

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.t(d[key])
        return d

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        if not isinstance(self.t, InvertibleTransform):
            raise NotImplementedError(f"{type(self.t).__name__} has no inverse")
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.t.inverse(d[key])
        return d


class ChannelToTimed(_Wrapd):
    """Dictionary :class:`~medst.transforms.ChannelToTime`: (T, X, Y, Z) -> (1, T, X, Y, Z) for each key."""

    backend = ChannelToTime.backend

    def __init__(self, keys: KeysCollection, channels: int = 1, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.t = ChannelToTime(channels)


class TimeToChanneld(_Wrapd):
    """Dictionary :class:`~medst.transforms.TimeToChannel`: (1, T, X, Y, Z) -> (T, X, Y, Z) for each key."""

    backend = TimeToChannel.backend

    def __init__(self, keys: KeysCollection, allow_channels: bool = False, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.t = TimeToChannel(allow_channels)


class TemporalCropd(_Wrapd):
    """Dictionary :class:`~medst.transforms.TemporalCrop`."""

    backend = TemporalCrop.backend

    def __init__(self, keys: KeysCollection, start: int = 0, end: int | None = None, num_frames: int | None = None,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.t = TemporalCrop(start, end, num_frames)


class TemporalStrided(_Wrapd):
    """Dictionary :class:`~medst.transforms.TemporalStride`."""

    backend = TemporalStride.backend

    def __init__(self, keys: KeysCollection, stride: int, offset: int = 0, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.t = TemporalStride(stride, offset)


class TemporalPadd(_Wrapd):
    """Dictionary :class:`~medst.transforms.TemporalPad`; ``mode`` may differ per key (e.g. edge for images)."""

    backend = TemporalPad.backend

    def __init__(self, keys: KeysCollection, min_frames: int | None = None, multiple: int | None = None,
                 mode: str = "constant", side: str = "end", value: float = 0.0,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.t = TemporalPad(min_frames, multiple, mode, side, value)


class ResampleFrameRated(_Wrapd):
    """Dictionary :class:`~medst.transforms.ResampleFrameRate`; ``mode`` is one name or one per key (use
    ``"nearest"`` for labels)."""

    backend = ResampleFrameRate.backend

    def __init__(self, keys: KeysCollection, fps: float, mode: str | tuple[str, ...] = "nearest",
                 source_fps: float | None = None, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        modes = (mode,) * len(self.keys) if isinstance(mode, str) else tuple(mode)
        if len(modes) != len(self.keys):
            raise ValueError(f"give one mode or one per key ({len(self.keys)}), got {mode!r}")
        self.ts = {k: ResampleFrameRate(fps, m, source_fps) for k, m in zip(self.keys, modes)}
        self.t = self.ts[self.keys[0]]

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.ts[key](d[key])
        return d


class NormalizeIntensityPerFramed(_Wrapd):
    """Dictionary :class:`~medst.transforms.NormalizeIntensityPerFrame`."""

    backend = NormalizeIntensityPerFrame.backend

    def __init__(self, keys: KeysCollection, channel_wise: bool = True, nonzero: bool = False, eps: float = 1e-8,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.t = NormalizeIntensityPerFrame(channel_wise, nonzero, eps)


class PerFramed(Randomizable, _Wrapd):
    """Dictionary :class:`~medst.transforms.PerFrame`: apply a one-frame transform to every frame of each key.

    ``transform`` is an array transform on (C, *spatial); with ``same_random`` a random one uses the same draw for
    every frame and every key. One transform serves all keys, so its interpolation mode is shared: for an image
    and a label that need different modes, use two ``PerFramed`` with the same seed.
    """

    def __init__(self, keys: KeysCollection, transform: Callable, same_random: bool = True,
                 allow_missing_keys: bool = False) -> None:
        _Wrapd.__init__(self, keys, allow_missing_keys)
        self.t = PerFrame(transform, same_random)

    def set_random_state(self, seed: int | None = None, state=None) -> PerFramed:
        super().set_random_state(seed, state)
        self.t.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        """The wrapped transform draws its own parameters."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        rand = isinstance(self.t.transform, Randomizable) and self.t.same_random
        proto = copy.deepcopy(self.t.transform) if rand else None
        for key in self.key_iterator(d):
            if rand:  # every key gets the same draw (an image and its label stay aligned)
                self.t.transform = copy.deepcopy(proto)
            d[key] = self.t(d[key])
        return d


class RandTemporalCropd(Randomizable, MapTransform, InvertibleTransform):
    """Dictionary :class:`~medst.transforms.RandTemporalCrop`: the same clip of ``num_frames`` for every key."""

    backend = RandTemporalCrop.backend

    def __init__(self, keys: KeysCollection, num_frames: int, random_start: bool = True, pad: bool = False,
                 pad_mode: str = "constant", allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.cropper = RandTemporalCrop(num_frames, random_start, pad, pad_mode)

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
        for key in self.key_iterator(d):
            d[key] = self.cropper(d[key], randomize=False)
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
