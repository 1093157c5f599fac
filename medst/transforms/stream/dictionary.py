"""Dictionary versions of :mod:`medst.transforms.stream.array`, and the chunk writers."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform

from medst.data.streaming import ChunkWriter

from .array import NormalizeSeriesIntensity, Overlay

__all__ = ["NormalizeSeriesIntensityd", "Overlayd", "SaveVideoChunksd", "SaveNiftiChunksd"]


class NormalizeSeriesIntensityd(MapTransform):
    """Dictionary version of :class:`NormalizeSeriesIntensity`."""

    def __init__(self, keys: KeysCollection, dtype: Any = np.float32, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.t = NormalizeSeriesIntensity(dtype)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.t(d[key])
        return d


class Overlayd(MapTransform):
    """``d[output_key] = Overlay(...)(d[key], d[label_key])`` for each key (see :class:`Overlay`)."""

    def __init__(self, keys: KeysCollection, label_key: str = "pred", output_key: str | Sequence[str] = "overlay",
                 alpha: float = 0.5, num_classes: int = 2, image_range: Sequence[float] | None = (0.0, 1.0),
                 cmap: str = "hsv", as_uint8: bool = True, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.label_key = label_key
        outs = (output_key,) if isinstance(output_key, str) else tuple(output_key)
        if len(outs) != len(self.keys):
            raise ValueError(f"give one output_key per key ({len(self.keys)}), got {output_key!r}")
        self.output_keys = dict(zip(self.keys, outs))
        self.t = Overlay(alpha, num_classes, image_range, cmap, as_uint8)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.output_keys[key]] = self.t(d[key], d[self.label_key])
        return d


class SaveVideoChunksd(MapTransform):
    """Append each chunk of ``keys`` to a video per source file, closed and moved into place at the last chunk.

    The chunk-by-chunk counterpart of ``SaveImaged(output_ext=".mkv")``: the output name is
    ``<output_dir>/<input name>_<output_postfix><output_ext>`` (``output_path(source)``), the frame rate that of the
    input (its metadata). .mkv/.avi keep labels exactly (FFV1); .mp4 is for viewing. Encoding runs on a writer
    thread; nothing carries the final name until the last frame is in. See :class:`medst.data.ChunkWriter`.
    """

    kind = "video"

    def __init__(self, keys: KeysCollection, output_dir: str, output_postfix: str = "seg",
                 output_ext: str = ".mkv", output_dtype: Any = np.uint8, scale: int | None = None,
                 codec: str | None = None, options: Mapping[str, str] | None = None, threaded: bool = True,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        posts = (output_postfix,) * len(self.keys) if isinstance(output_postfix, str) else tuple(output_postfix)
        if len(posts) != len(self.keys):
            raise ValueError(f"give one output_postfix or one per key ({len(self.keys)}), got {output_postfix!r}")
        self.writers = {
            k: ChunkWriter(output_dir, p, output_ext, kind=self.kind, scale=scale, codec=codec, options=options,
                           output_dtype=output_dtype, threaded=threaded)
            for k, p in zip(self.keys, posts)
        }

    def output_paths(self, source: str) -> list[str]:
        """The files written for an input file (one per key)."""
        return [str(w.output_path(source)) for w in self.writers.values()]

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            self.writers[key](d[key])
        return d


class SaveNiftiChunksd(SaveVideoChunksd):
    """Append each chunk (1, t, X, Y, Z) of a 4D series to a NIfTI (X, Y, Z, T), written in place at the last chunk.

    The frames go to a raw file as they come (time is the NIfTI's slowest axis, so appending is contiguous) and
    become the .nii/.nii.gz, with the input's affine and time spacing, when the last chunk arrives: memory stays
    one chunk whatever the length.
    """

    kind = "nifti"

    def __init__(self, keys: KeysCollection, output_dir: str, output_postfix: str = "seg",
                 output_ext: str = ".nii.gz", output_dtype: Any = np.uint8, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, output_dir, output_postfix, output_ext, output_dtype, threaded=False,
                         allow_missing_keys=allow_missing_keys)
