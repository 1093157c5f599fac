"""Readers, writers, datasets and sample data.

Importing this package registers :class:`VideoReader` with MONAI's ``LoadImage`` (by suffix) and
:class:`VideoWriter` with MONAI's writer registry (``SaveImage(output_ext=".mp4")``).
"""

from __future__ import annotations

from .sample_data import SAMPLE_FILES, package_file, sample_file
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
    is_dicom_cine,
    read_video,
    register_video_io,
    video_info,
    write_video,
)

register_video_io()

__all__ = [
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
    "is_dicom_cine",
    "read_video",
    "register_video_io",
    "video_info",
    "write_video",
]
