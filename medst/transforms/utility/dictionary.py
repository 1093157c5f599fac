"""Dictionary versions of :mod:`medst.transforms.utility.array`."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform
from monai.utils import ensure_tuple_rep

from .array import CheckFinite, CheckNdim, check_same_shapes

__all__ = ["CheckNdimd", "CheckFinited", "CheckShapesd", "CheckFiniteD", "CheckFiniteDict"]


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
    axis, and raise an error naming the files otherwise (``spatial_only=False`` compares channels too; ``axes``
    compares only those axes, e.g. ``[2, 3]`` for a forecast whose label has another number of frames).

    MONAI has no such transform (its ``SupervisedTrainer`` fails later, or not at all, on a label of another shape).
    """

    backend = CheckNdim.backend

    def __init__(self, keys: KeysCollection, spatial_only: bool = True, axes: Sequence[int] | None = None,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.spatial_only = spatial_only
        self.axes = None if axes is None else tuple(int(a) for a in axes)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        check_same_shapes({str(k): d[k] for k in self.key_iterator(d)}, self.spatial_only, self.axes)
        return d


class CheckFinited(MapTransform):
    """Dictionary :class:`~medst.transforms.CheckFinite`: NaN / inf under each key is an error naming the key and the
    file (``on_nonfinite="raise"``, default), or is replaced with a logged warning (``"replace"``); one value or one
    per key."""

    backend = CheckFinite.backend

    def __init__(self, keys: KeysCollection, on_nonfinite: str | Sequence[str] = "raise", nan: float = 0.0,
                 posinf: float | None = None, neginf: float | None = None, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.on_nonfinite = ensure_tuple_rep(on_nonfinite, len(self.keys))
        self.checkers = {
            k: CheckFinite(m, nan, posinf, neginf, name=str(k)) for k, m in zip(self.keys, self.on_nonfinite)
        }

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.checkers[key](d[key])
        return d


CheckFiniteD = CheckFiniteDict = CheckFinited
