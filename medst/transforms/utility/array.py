"""Input checks that fail early with a message naming the file and what is wrong."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monai.config import NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import Transform
from monai.utils import TransformBackends

from medst.data.utils import MedstDataError

__all__ = ["CheckNdim", "check_same_shapes", "source_name"]


def source_name(img: Any) -> str | None:
    """The file an array came from (``meta["filename_or_obj"]``), if known."""
    if isinstance(img, MetaTensor):
        name = img.meta.get("filename_or_obj")
        return str(name) if name else None
    return None


class CheckNdim(Transform):
    """Check that a channel-first array has an expected number of axes, and pass it through unchanged.

    Args:
        ndim: allowed total numbers of axes, channel included: 4 for a 3D scan or a video (C, T, H, W), 5 for a
            4D scan (C, T, X, Y, Z).
        min_frames: when set, axis 1 (time) must have at least this many frames.
        name: what the array is, for the message ("image", "label").
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, ndim: int | Sequence[int], min_frames: int | None = None, name: str = "image") -> None:
        self.ndim = (int(ndim),) if isinstance(ndim, int) else tuple(int(n) for n in ndim)
        self.min_frames, self.name = min_frames, name

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        src = source_name(img)
        where = f" from {src}" if src else ""
        if img.ndim not in self.ndim:
            raise MedstDataError(
                f"the {self.name}{where} has {img.ndim} axes, shape {tuple(img.shape)}; expected "
                f"{' or '.join(map(str, self.ndim))} (channel first: (C, X, Y, Z), (C, T, H, W) or (C, T, X, Y, Z))"
            )
        if self.min_frames is not None and (img.ndim < 2 or img.shape[1] < self.min_frames):
            raise MedstDataError(
                f"the {self.name}{where} has {img.shape[1] if img.ndim > 1 else 0} frames, fewer than "
                f"{self.min_frames}; shape {tuple(img.shape)}"
            )
        return img


def check_same_shapes(arrays: dict[str, Any], spatial_only: bool = True) -> None:
    """Raise when the arrays (name -> channel-first array) differ in shape (ignoring channels if ``spatial_only``).

    Raises:
        MedstDataError: naming each array, its file and its shape.
    """
    shapes = {k: tuple(v.shape[1:] if spatial_only else v.shape) for k, v in arrays.items()}
    if len(set(shapes.values())) > 1:
        parts = [
            f"{k} {tuple(arrays[k].shape)}" + (f" from {source_name(arrays[k])}" if source_name(arrays[k]) else "")
            for k in arrays
        ]
        what = "spatial/time shapes" if spatial_only else "shapes"
        raise MedstDataError(f"mismatched {what}: {', '.join(parts)}; resample or crop them to the same grid")
