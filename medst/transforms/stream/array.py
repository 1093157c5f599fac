"""Array transforms for chunked sequences and overlays."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import NormalizeIntensity, Transform
from monai.utils import convert_to_tensor
from monai.visualize import blend_images

from medst.data.utils import MedstDataError

__all__ = ["NormalizeSeriesIntensity", "Overlay"]


class NormalizeSeriesIntensity(Transform):
    """``NormalizeIntensity`` of a whole series, applied to one chunk of it.

    MONAI's ``NormalizeIntensity`` takes the mean and standard deviation of what it is given; given a chunk, that
    is the chunk's. This one takes them from the chunk's metadata (``series_mean``, ``series_std``, which
    :class:`medst.data.ChunkDataset` puts there with ``series_stats=True``), so that every chunk is normalised as
    the whole series would be. Without them (a whole series, not chunked) it is ``NormalizeIntensity()``.
    """

    def __init__(self, dtype: Any = np.float32) -> None:
        self.dtype = dtype

    def __call__(self, img: Any) -> Any:
        meta = getattr(img, "meta", {}) or {}
        if "series_mean" not in meta:
            if "chunk_index" in meta:
                raise MedstDataError(
                    f"{meta.get('filename_or_obj', 'a chunk')}: chunk without series_mean/series_std: build the "
                    "ChunkDataset with series_stats=True"
                )
            return NormalizeIntensity(dtype=self.dtype)(img)
        mean, std = float(meta["series_mean"]), float(meta["series_std"])
        return NormalizeIntensity(subtrahend=mean, divisor=std if std > 0 else 1.0, dtype=self.dtype)(img)


class Overlay(Transform):
    """A label map drawn over its image in colour with MONAI's ``blend_images``: (1|3, *spatial) -> (3, *spatial).

    Unlike ``blend_images`` alone, the colours do not depend on which labels a chunk happens to hold: the image is
    scaled by a fixed ``image_range`` and label ``k`` takes the colour ``cmap(k / num_classes)``, so the chunks of
    a video overlay the same way as the whole clip. The result is uint8 RGB (``as_uint8``) for a video writer.

    Args:
        alpha: opacity of the labels (background stays transparent).
        num_classes: number of labels including the background.
        image_range: (low, high) intensities mapped to black and white; ``None``: the image's own min and max.
        cmap: a matplotlib colour map name.
        as_uint8: return uint8 0..255 (else float 0..1).
    """

    def __init__(self, alpha: float = 0.5, num_classes: int = 2, image_range: Sequence[float] | None = (0.0, 1.0),
                 cmap: str = "hsv", as_uint8: bool = True) -> None:
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}.")
        self.alpha, self.num_classes, self.image_range = float(alpha), int(num_classes), image_range
        self.cmap, self.as_uint8 = cmap, as_uint8

    def __call__(self, image: Any, label: Any) -> torch.Tensor:
        img = convert_to_tensor(image, track_meta=False).float()
        lab = convert_to_tensor(label, track_meta=False)
        if lab.ndim == img.ndim - 1:
            lab = lab[None]
        if lab.shape[0] != 1 or img.shape[0] not in (1, 3) or img.shape[1:] != lab.shape[1:]:
            raise MedstDataError(
                f"an overlay needs a (1|3, *spatial) image and a (1, *spatial) label of the same size, got "
                f"{tuple(img.shape)} and {tuple(lab.shape)}"
            )
        if self.image_range is None:
            lo, hi = float(img.min()), float(img.max())
        else:
            lo, hi = (float(v) for v in self.image_range)
        img = ((img - lo) / (hi - lo if hi > lo else 1.0)).clamp(0.0, 1.0)
        out = blend_images(img.cpu(), lab.cpu().float() / self.num_classes, alpha=self.alpha, cmap=self.cmap,
                           rescale_arrays=False, transparent_background=True)
        if self.as_uint8:
            out = (out * 255.0).round_().clamp_(0, 255).to(torch.uint8)
        if isinstance(image, MetaTensor):
            out = MetaTensor(out, meta=dict(image.meta))
        return out
