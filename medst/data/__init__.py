"""Readers, writers, datasets and sample data.

Importing this package registers :class:`VideoReader` with MONAI's ``LoadImage`` (by suffix) and
:class:`VideoWriter` with MONAI's writer registry (``SaveImage(output_ext=".mp4")``), and the NIfTI reader and
writer that keep a 4D scan's time spacing (pixdim[4]) for .nii / .nii.gz.
"""

from __future__ import annotations

from .overlay import (
    DEFAULT_COLOURS,
    overlay_frames,
    save_filmstrip_png,
    save_overlay_png,
    to_uint8,
    write_overlay_video,
)
from .sample_data import SAMPLE_FILES, package_file, sample_file
from .nifti import (
    TIME_UNIT_SECONDS,
    NiftiTimeReader,
    NiftiTimeWriter,
    register_nifti_io,
    save_nifti,
    time_spacing_seconds,
)
from .streaming import CHUNK_KEYS, ChunkDataset, ChunkWriter, iter_chunks
from .utils import (
    CorruptFileError,
    MedstDataError,
    UnsupportedFormatError,
    atomic_write_path,
    check_not_input,
    check_readable_file,
)
from .video import (
    LOSSLESS_SUFFIXES,
    VIDEO_SUFFIXES,
    VideoReader,
    VideoWriter,
    count_frames,
    is_dicom_cine,
    read_video,
    register_video_io,
    video_info,
    write_video,
)

register_nifti_io()  # before the video reader: readers registered later are tried first
register_video_io()

__all__ = [
    "CHUNK_KEYS",
    "ChunkDataset",
    "ChunkWriter",
    "iter_chunks",
    "SAMPLE_FILES",
    "package_file",
    "sample_file",
    "MedstDataError",
    "CorruptFileError",
    "UnsupportedFormatError",
    "atomic_write_path",
    "check_not_input",
    "check_readable_file",
    "VIDEO_SUFFIXES",
    "LOSSLESS_SUFFIXES",
    "VideoReader",
    "VideoWriter",
    "count_frames",
    "is_dicom_cine",
    "read_video",
    "register_video_io",
    "video_info",
    "write_video",
    "TIME_UNIT_SECONDS",
    "NiftiTimeReader",
    "NiftiTimeWriter",
    "register_nifti_io",
    "save_nifti",
    "time_spacing_seconds",
    "DEFAULT_COLOURS",
    "overlay_frames",
    "save_filmstrip_png",
    "save_overlay_png",
    "to_uint8",
    "write_overlay_video",
]
