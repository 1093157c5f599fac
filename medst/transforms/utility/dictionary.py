"""Dictionary versions of :mod:`medst.transforms.utility.array`."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform

from .array import CheckNdim, check_same_shapes

__all__ = ["CheckNdimd", "CheckShapesd"]


class CheckNdimd(MapTransform):
    """Dictionary :class:`~medst.transforms.CheckNdim`: each key is checked and passed through."""

    backend = CheckNdim.backend

    def __init__(self, keys: KeysCollection, ndim: int | Sequence[int], min_frames: int | None = None,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.ndim, self.min_frames = ndim, min_frames

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            CheckNdim(self.ndim, self.min_frames, name=str(key))(d[key])
        return d


class CheckShapesd(MapTransform):
    """Check that the arrays under ``keys`` (e.g. ``["image", "label"]``) have the same shape after the channel
    axis, and raise an error naming the files otherwise (``spatial_only=False`` compares channels too)."""

    backend = CheckNdim.backend

    def __init__(self, keys: KeysCollection, spatial_only: bool = True, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.spatial_only = spatial_only

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        check_same_shapes({str(k): d[k] for k in self.key_iterator(d)}, self.spatial_only)
        return d
