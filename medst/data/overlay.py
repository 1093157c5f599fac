"""Pictures a person can look at: a segmentation drawn over its video, or over three slices of its volume.

``write_overlay_video`` blends coloured labels over the frames of a video (C, T, H, W) and writes a video
(lossy .mp4 by default, for watching); ``save_overlay_png`` draws three orthogonal slices of a volume
(C, X, Y, Z) with the mask's outline and fill, through the mask's centre, into one PNG; ``save_filmstrip_png``
lays clips out as rows of frames (e.g. the input and the forecast of a prediction). All write atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .utils import MedstDataError, atomic_write_path
from .video import write_video

__all__ = ["DEFAULT_COLOURS", "overlay_frames", "write_overlay_video", "save_overlay_png", "save_filmstrip_png",
           "to_uint8"]

#: RGB colours of labels 1, 2, ... (label 0 is background and left unpainted); cycled for more labels
DEFAULT_COLOURS: tuple[tuple[int, int, int], ...] = (
    (255, 48, 48), (48, 220, 48), (64, 128, 255), (255, 220, 0), (255, 0, 255), (0, 230, 230),
    (255, 140, 0), (160, 90, 255), (150, 255, 150), (255, 150, 170),
)


def _np(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def to_uint8(image: Any, lower: float = 0.5, upper: float = 99.5) -> np.ndarray:
    """Rescale intensities to 0..255 between the ``lower`` and ``upper`` percentiles (uint8 input is kept)."""
    a = _np(image)
    if a.dtype == np.uint8:
        return a
    a = a.astype(np.float32)
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return np.zeros(a.shape, np.uint8)
    lo, hi = np.percentile(finite, [lower, upper])
    if hi <= lo:
        hi = lo + 1.0
    return (np.clip((np.nan_to_num(a, nan=lo) - lo) / (hi - lo), 0, 1) * 255).round().astype(np.uint8)


def _labels(labels: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    lab = _np(labels)
    if lab.ndim == len(shape) + 1:
        if lab.shape[0] == 1:
            lab = lab[0]
        else:  # one-hot or probabilities: the argmax
            lab = lab.argmax(0)
    if lab.shape != shape:
        raise MedstDataError(f"{what}: labels of shape {tuple(_np(labels).shape)} do not match the image {shape}")
    if lab.dtype.kind == "f":
        lab = np.round(lab)
    return lab.astype(np.int64)


def overlay_frames(image: Any, labels: Any, alpha: float = 0.5,
                   colours: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """Blend labels over frames.

    Args:
        image: (C, T, H, W) with C in {1, 3}, or (T, H, W); any intensity range (rescaled by percentiles).
        labels: (1, T, H, W), (T, H, W) or (K, T, H, W) one-hot/probabilities (argmax taken).
        alpha: opacity of the label colours.
        colours: RGB per label 1, 2, ... (default :data:`DEFAULT_COLOURS`).

    Returns:
        uint8 RGB frames (T, H, W, 3).
    """
    img = _np(image)
    if img.ndim == 3:
        img = img[None]
    if img.ndim != 4 or img.shape[0] not in (1, 3):
        raise MedstDataError(f"overlay: image must be (C, T, H, W) with C 1 or 3, or (T, H, W), got {img.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    lab = _labels(labels, img.shape[1:], "overlay")
    from medst.transforms.stream.array import Overlay  # the one blend of medst's overlays (transforms import data)

    out = Overlay(alpha, num_classes=max(2, int(lab.max(initial=0)) + 1), image_range=(0.0, 255.0),
                  colours=colours or DEFAULT_COLOURS)(torch.from_numpy(to_uint8(img)), torch.from_numpy(lab))
    return np.ascontiguousarray(out.movedim(0, -1).numpy())


def write_overlay_video(image: Any, labels: Any, path: str | os.PathLike, fps: float | None = None,
                        alpha: float = 0.5, colours: Sequence[Sequence[int]] | None = None, **kwargs) -> Path:
    """Write a video of the labels drawn over the image (see :func:`overlay_frames` for shapes).

    ``fps`` defaults to the image's metadata (``fps``) or 25. ``kwargs`` go to :func:`medst.data.write_video`
    (``codec``, ``options``). The input file named in the image's metadata is never overwritten.
    """
    if fps is None:
        meta = getattr(image, "meta", {}) or {}
        fps = float(np.asarray(meta.get("fps", 25.0)).reshape(-1)[0])
    src = (getattr(image, "meta", {}) or {}).get("filename_or_obj")
    frames = overlay_frames(image, labels, alpha, colours)
    return write_video(frames, path, fps=fps, inputs=[src] if src else None, **kwargs)


def _centre(mask: np.ndarray) -> tuple[int, ...]:
    idx = np.argwhere(mask)
    if idx.size == 0:
        return tuple(s // 2 for s in mask.shape)
    return tuple(int(round(v)) for v in idx.mean(0))


def save_overlay_png(image: Any, mask: Any, path: str | os.PathLike, alpha: float = 0.4,
                     colours: Sequence[Sequence[int]] | None = None, slices: Sequence[int] | None = None,
                     title: str | None = None, dpi: int = 100) -> Path:
    """Three orthogonal slices of a volume with the mask over them, in one PNG.

    Args:
        image: (X, Y, Z) or (1, X, Y, Z).
        mask: labels (X, Y, Z), (1, X, Y, Z), or (K, X, Y, Z) one-hot/probabilities.
        path: output .png.
        alpha: fill opacity (the outline is drawn opaque).
        slices: the (x, y, z) indices of the three planes (default: the mask's centre of mass).
        title: text above the panels.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    spacing = (1.0, 1.0, 1.0)
    if hasattr(image, "pixdim") and len(image.pixdim) == 3:  # a MetaTensor: draw voxels with their true shape
        spacing = tuple(float(v) for v in image.pixdim)
    img = _np(image)
    if img.ndim == 4 and img.shape[0] == 1:
        img = img[0]
    if img.ndim != 3:
        raise MedstDataError(f"save_overlay_png: image must be (X, Y, Z) or (1, X, Y, Z), got {img.shape}")
    lab = _labels(mask, img.shape, "save_overlay_png")
    grey = to_uint8(img)
    centre = tuple(int(s) for s in slices) if slices is not None else _centre(lab > 0)
    if len(centre) != 3 or any(not 0 <= c < s for c, s in zip(centre, img.shape)):
        raise ValueError(f"slices {centre} are outside the volume {img.shape}")
    pal = np.asarray(colours or DEFAULT_COLOURS, np.float32) / 255.0
    n_lab = max(1, int(lab.max()))
    cmap = ListedColormap([(0, 0, 0, 0)] + [(*pal[(i - 1) % len(pal)], 1.0) for i in range(1, n_lab + 1)])
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    names = ("sagittal (x = {})", "coronal (y = {})", "axial (z = {})")
    for ax_i, ax in enumerate(axes):
        sl = [slice(None)] * 3
        sl[ax_i] = centre[ax_i]
        g = grey[tuple(sl)].T  # rows: the second remaining axis, shown bottom-up
        m = lab[tuple(sl)].T
        rest = [a for a in range(3) if a != ax_i]
        aspect = spacing[rest[1]] / spacing[rest[0]]
        ax.imshow(g, cmap="gray", origin="lower", interpolation="nearest", aspect=aspect)
        ax.imshow(np.ma.masked_equal(m, 0), cmap=cmap, vmin=0, vmax=n_lab, alpha=alpha, origin="lower",
                  interpolation="nearest", aspect=aspect)
        if m.any():
            ax.contour(m > 0, levels=[0.5], colors=["yellow"], linewidths=0.8, origin="lower")
        ax.set_title(names[ax_i].format(centre[ax_i]))
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_write_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    return path


def save_filmstrip_png(clips: Sequence[Any], path: str | os.PathLike, value_range: tuple[float, float] = (0.0, 1.0),
                       gap: int = 2) -> Path:
    """Grey clips as rows of frames in one PNG: row ``i`` is ``clips[i]``, its frames left to right in time.

    Args:
        clips: each (T, H, W) or (1, T, H, W); every clip's frames the same H x W (rows may differ in T: shorter
            rows end early).
        path: output .png.
        value_range: intensities mapped to black and white (uint8 clips are drawn as they are).
        gap: pixels of grey between frames and between rows.
    """
    from PIL import Image
    from skimage.util import montage

    lo, hi = value_range
    if not hi > lo:
        raise ValueError(f"save_filmstrip_png: value_range must be (low, high) with high > low, got {value_range}")
    rows = []
    for i, clip in enumerate(clips):
        a = _np(clip)
        if a.ndim == 4 and a.shape[0] == 1:
            a = a[0]
        if a.ndim != 3:
            raise MedstDataError(f"save_filmstrip_png: clip {i} must be (T, H, W) or (1, T, H, W), got {a.shape}")
        if a.dtype != np.uint8:
            a = (np.clip((a.astype(np.float32) - lo) / (hi - lo), 0, 1) * 255).round().astype(np.uint8)
        rows.append(a)
    if not rows:
        raise MedstDataError("save_filmstrip_png: no clips given")
    h, w = rows[0].shape[1:]
    if any(r.shape[1:] != (h, w) for r in rows):
        raise MedstDataError(f"save_filmstrip_png: frames differ in size: {[r.shape[1:] for r in rows]}")
    if gap < 0:
        raise ValueError(f"save_filmstrip_png: gap must be >= 0, got {gap}")
    cols = max(r.shape[0] for r in rows)
    tiles = np.full((len(rows), cols, h, w), 96, np.uint8)  # a shorter row ends in grey tiles
    for i, r in enumerate(rows):
        tiles[i, : r.shape[0]] = r
    # scikit-image's montage lays the grid out; it also pads the outer border by `gap`, which is cropped here
    sheet = montage(tiles.reshape(-1, h, w), fill=96, grid_shape=(len(rows), cols), padding_width=gap)
    sheet = sheet[gap: sheet.shape[0] - gap, gap: sheet.shape[1] - gap]
    path = Path(path)
    with atomic_write_path(path) as tmp:
        Image.fromarray(sheet).save(tmp, format="png", optimize=True)
    return path
