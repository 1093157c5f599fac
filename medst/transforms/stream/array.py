"""Array transforms for chunked sequences and overlays."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import NormalizeIntensity, Transform
from monai.utils import convert_to_tensor

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
    """A label map drawn over its image in colour, as MONAI's ``blend_images`` draws it: (1|3, *spatial) -> (3, ...).

    The same blend as ``blend_images(image, label / num_classes, alpha, cmap, rescale_arrays=False,
    transparent_background=True)`` (tested equal), computed with a colour table of the ``num_classes`` labels
    instead of the colour map over every voxel, in float32, a slab of frames at a time: ``blend_images`` on a chunk of
    256 frames of 640x480 held 2.5 GB of float64 colours. Unlike ``blend_images`` with its defaults, the colours do not
    depend on which labels a chunk happens to hold: the image is scaled by a fixed ``image_range`` and label ``k``
    takes the colour ``cmap(k / num_classes)``, so the chunks of a video overlay the same way as the whole clip.

    Args:
        alpha: opacity of the labels (background stays transparent).
        num_classes: number of labels including the background.
        image_range: (low, high) intensities mapped to black and white; ``None``: the image's own min and max.
        cmap: a matplotlib colour map name.
        as_uint8: return uint8 0..255 (else float 0..1).
        colours: RGB triples (0..255) of labels 1, 2, ..., cycled, instead of ``cmap`` (for instance
            :data:`medst.data.DEFAULT_COLOURS`, the colours of medst's PNG pictures).
    """

    def __init__(self, alpha: float = 0.5, num_classes: int = 2, image_range: Sequence[float] | None = (0.0, 1.0),
                 cmap: str = "hsv", as_uint8: bool = True,
                 colours: Sequence[Sequence[int]] | None = None) -> None:
        import matplotlib

        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}.")
        self.alpha, self.num_classes, self.image_range = float(alpha), int(num_classes), image_range
        self.cmap, self.as_uint8 = cmap, as_uint8
        if colours is None:
            table = matplotlib.colormaps[cmap](np.arange(self.num_classes) / self.num_classes)[:, :3]
        else:
            pal = np.asarray(colours, np.float32)
            if pal.ndim != 2 or pal.shape[1] != 3 or len(pal) == 0:
                raise ValueError(f"colours must be a list of RGB triples, got shape {pal.shape}")
            table = np.concatenate([np.zeros((1, 3), np.float32),  # label 0 is never painted
                                    pal[np.arange(self.num_classes - 1) % len(pal)] / 255.0])
        self.colours = torch.as_tensor(table, dtype=torch.float32)  # (K, 3)

    def __call__(self, image: Any, label: Any) -> torch.Tensor:
        img = convert_to_tensor(image, track_meta=False)
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
        scale = 1.0 / (hi - lo if hi > lo else 1.0)
        lab = lab.cpu().long().clamp_(0, self.num_classes - 1)
        out = torch.empty((3, *img.shape[1:]), dtype=torch.uint8 if self.as_uint8 else torch.float32)
        # slabs of frames (slices) of about 4 M voxels: bounded float32 memory, few Python steps for small frames
        step = max(1, (1 << 22) // max(1, int(np.prod(img.shape[2:]))))
        for t in range(0, img.shape[1], step):
            frame = ((img[:, t : t + step].cpu().float() - lo) * scale).clamp_(0.0, 1.0)
            frame = frame.expand(3, *frame.shape[1:])
            k = lab[0, t : t + step]
            w = (k > 0).to(torch.float32) * self.alpha
            colour = self.colours[k].movedim(-1, 0)  # (3, slab, *frame)
            blended = frame * (1.0 - w) + colour * w
            if self.as_uint8:
                blended = (blended * 255.0).round_().clamp_(0, 255).to(torch.uint8)
            out[:, t : t + step] = blended
        if isinstance(image, MetaTensor):
            out = MetaTensor(out, meta=dict(image.meta))
        return out
