"""Readers, writers, datasets and sample data.

Importing this package registers with MONAI only what MONAI lacks (:func:`register_io`): :class:`VideoReader`
with ``LoadImage()`` (videos by content, multi-frame DICOM cine), :class:`VideoWriter` for the video suffixes of
``SaveImage``, and the NIfTI reader and writer that keep a 4D scan's time spacing (pixdim[4]), in front of MONAI's
own NIfTI reader and writers (which stay behind them, the ITK fallback included). A process opts out with the
environment variable ``MEDST_REGISTER_IO=0`` (set before ``import medst``) or by calling :func:`unregister_io`;
a bundle config that names ``medst.data.VideoReader`` works either way.
"""

from __future__ import annotations

import os

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
    unregister_nifti_io,
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
    NON_VIDEO_SUFFIXES,
    VIDEO_SUFFIXES,
    WRITE_SUFFIXES,
    VideoReader,
    VideoWriter,
    count_frames,
    is_dicom_cine,
    is_video_file,
    read_video,
    register_video_io,
    unregister_video_io,
    video_info,
    write_video,
)

#: environment variable: ``0`` (or ``false``/``no``/``off``) stops ``import medst`` from registering readers/writers
REGISTER_IO_ENV = "MEDST_REGISTER_IO"


def register_io() -> None:
    """Register medst's readers and writers with MONAI (what ``import medst`` does unless ``MEDST_REGISTER_IO=0``).

    The NIfTI reader first, then the video reader: readers registered later are tried first by ``LoadImage()``,
    and the video reader claims only videos and DICOM cine.
    """
    register_nifti_io()
    register_video_io()


def unregister_io() -> None:
    """Give MONAI back its reader and writer tables as they were before :func:`register_io`.

    ``LoadImage`` / ``SaveImage`` objects created after this call use MONAI's own readers and writers only
    (objects created before keep the readers they registered).
    """
    unregister_video_io()
    unregister_nifti_io()


if os.environ.get(REGISTER_IO_ENV, "1").strip().lower() not in ("0", "false", "no", "off"):
    register_io()

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
    "unregister_video_io",
    "register_io",
    "unregister_io",
    "REGISTER_IO_ENV",
    "is_video_file",
    "NON_VIDEO_SUFFIXES",
    "WRITE_SUFFIXES",
    "video_info",
    "write_video",
    "TIME_UNIT_SECONDS",
    "NiftiTimeReader",
    "NiftiTimeWriter",
    "register_nifti_io",
    "unregister_nifti_io",
    "save_nifti",
    "time_spacing_seconds",
    "DEFAULT_COLOURS",
    "overlay_frames",
    "save_filmstrip_png",
    "save_overlay_png",
    "to_uint8",
    "write_overlay_video",
]
