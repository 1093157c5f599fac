"""Transforms for inputs that arrive chunk by chunk (:class:`medst.data.ChunkDataset`), and label overlays."""

from __future__ import annotations

from .array import NormalizeSeriesIntensity, Overlay
from .dictionary import NormalizeSeriesIntensityd, Overlayd, SaveNiftiChunksd, SaveVideoChunksd

__all__ = [
    "NormalizeSeriesIntensity",
    "NormalizeSeriesIntensityd",
    "Overlay",
    "Overlayd",
    "SaveNiftiChunksd",
    "SaveVideoChunksd",
]
