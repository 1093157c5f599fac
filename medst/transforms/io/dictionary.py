"""Dictionary version of :mod:`medst.transforms.io.array`."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable

from medst.data.utils import MedstDataError
from medst.data.video import count_frames

from .array import LoadVideoClip

__all__ = ["LoadVideoClipd"]


class LoadVideoClipd(Randomizable, MapTransform):
    """Load the same (random) clip from every key's video, e.g. an image video and its label video (.mkv).

    The clip is drawn from the first key's frame count; every key must have the same number of frames.
    Per-key ``channels`` (e.g. ``("rgb", "grey")``) allow a colour image with a grey label video.
    See :class:`~medst.transforms.LoadVideoClip` for the arguments.
    """

    def __init__(self, keys: KeysCollection, num_frames: int, stride: int = 1, random_start: bool = True,
                 channels: str | tuple[str, ...] = "auto", dtype: Any = np.float32, allow_short: bool = False,
                 allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.loader = LoadVideoClip(num_frames, stride, random_start, "auto", dtype, allow_short)
        chans = (channels,) * len(self.keys) if isinstance(channels, str) else tuple(channels)
        if len(chans) != len(self.keys):
            raise ValueError(f"give one channels value or one per key ({len(self.keys)}), got {channels!r}")
        self.channels = dict(zip(self.keys, chans))

    def set_random_state(self, seed: int | None = None, state=None) -> LoadVideoClipd:
        super().set_random_state(seed, state)
        self.loader.set_random_state(seed, state)
        return self

    def randomize(self, data: int) -> None:
        self.loader.randomize(data)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        keys = list(self.key_iterator(d))
        if not keys:
            return d
        totals = {k: count_frames(d[k]) for k in keys}
        if len(set(totals.values())) > 1:
            raise MedstDataError(
                "videos differ in length: " + ", ".join(f"{k} {d[k]} has {n} frames" for k, n in totals.items())
            )
        self.loader.check_length(d[keys[0]], totals[keys[0]])
        self.randomize(totals[keys[0]])
        for key in keys:
            self.loader.channels = self.channels[key]
            d[key] = self.loader(d[key], randomize=False)
        return d
