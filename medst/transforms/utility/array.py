"""Input checks that fail early with a message naming the file and what is wrong."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import Transform
from monai.utils import TransformBackends

from medst.data.utils import MedstDataError

__all__ = ["CheckNdim", "CheckFinite", "check_same_shapes", "source_name"]

logger = logging.getLogger(__name__)


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


def check_same_shapes(arrays: dict[str, Any], spatial_only: bool = True, axes: Sequence[int] | None = None) -> None:
    """Raise when the arrays (name -> channel-first array) differ in shape (ignoring channels if ``spatial_only``).

    ``axes``: compare only these axes (e.g. ``(2, 3)``, H and W of a video whose label has another number of
    frames); overrides ``spatial_only``.

    Raises:
        MedstDataError: naming each array, its file and its shape.
    """
    if axes is not None:
        shapes = {k: tuple(v.shape[a] if -v.ndim <= a < v.ndim else None for a in axes) for k, v in arrays.items()}
    else:
        shapes = {k: tuple(v.shape[1:] if spatial_only else v.shape) for k, v in arrays.items()}
    if len(set(shapes.values())) > 1:
        parts = [
            f"{k} {tuple(arrays[k].shape)}" + (f" from {source_name(arrays[k])}" if source_name(arrays[k]) else "")
            for k in arrays
        ]
        what = "spatial/time shapes" if spatial_only else "shapes"
        if axes is not None:
            what = f"sizes of axes {tuple(axes)}"
        raise MedstDataError(f"mismatched {what}: {', '.join(parts)}; resample or crop them to the same grid")


class CheckFinite(Transform):
    """Refuse (or replace, with a logged warning) NaN and infinite values, and pass a finite array through unchanged.

    One NaN voxel poisons every window and normalisation it touches (a sliding window with a NaN logit gives NaN
    probabilities, and their argmax an empty segmentation), so by default it is an error naming the file.

    Args:
        on_nonfinite: ``"raise"`` (default): raise :class:`~medst.data.MedstDataError` naming the file, the count and
            the first position; ``"replace"``: replace NaN with ``nan``, +inf with ``posinf`` and -inf with
            ``neginf`` and log a warning naming the file and the count.
        nan: the value for NaN when replacing.
        posinf: the value for +inf when replacing (``None``: the largest finite value of the array, 0 if none).
        neginf: the value for -inf when replacing (``None``: the smallest finite value of the array, 0 if none).
        name: what the array is, for the message ("image").
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, on_nonfinite: str = "raise", nan: float = 0.0, posinf: float | None = None,
                 neginf: float | None = None, name: str = "image") -> None:
        if on_nonfinite not in ("raise", "replace"):
            raise ValueError(f"on_nonfinite must be 'raise' or 'replace', got {on_nonfinite!r}")
        self.on_nonfinite, self.nan, self.posinf, self.neginf, self.name = on_nonfinite, nan, posinf, neginf, name

    def __call__(self, img: NdarrayOrTensor, on_nonfinite: str | None = None) -> NdarrayOrTensor:
        """Check ``img``; ``on_nonfinite`` overrides the constructor's (per key in :class:`CheckFinited`)."""
        is_np = isinstance(img, np.ndarray)
        t = torch.as_tensor(img) if is_np else img
        if not t.is_floating_point() and not t.is_complex():
            return img  # integer arrays hold no NaN or inf
        bad = ~torch.isfinite(t)
        count = int(bad.sum())
        if count == 0:
            return img
        src = source_name(img)
        where = f" in {src}" if src else ""
        n_nan, n_pinf = int(torch.isnan(t).sum()), int(torch.isposinf(t).sum())
        what = f"{count} non-finite value(s) ({n_nan} NaN, {n_pinf} +inf, {count - n_nan - n_pinf} -inf)"
        mode = on_nonfinite or self.on_nonfinite
        if mode == "raise":
            first = tuple(int(i) for i in torch.nonzero(bad)[0])
            raise MedstDataError(
                f"the {self.name}{where} has {what} of {t.numel()}, the first at index {first}; a NaN would spread "
                "through normalisation and every window that touches it. Fix the file, or replace them with "
                "CheckFinite(on_nonfinite='replace')"
            )
        finite = t[~bad]
        hi = float(finite.max()) if finite.numel() else 0.0
        lo = float(finite.min()) if finite.numel() else 0.0
        out = torch.nan_to_num(
            t, nan=self.nan, posinf=hi if self.posinf is None else self.posinf,
            neginf=lo if self.neginf is None else self.neginf,
        )
        logger.warning("the %s%s had %s; replaced (NaN -> %s)", self.name, where, what, self.nan)
        if isinstance(img, MetaTensor) and not isinstance(out, MetaTensor):
            out = MetaTensor(out, meta=img.meta, applied_operations=img.applied_operations)
        return out.numpy() if is_np else out
