"""Videos as MONAI images: a reader, a writer and plain functions over PyAV (FFmpeg) and pydicom.

A video loads as a channel-last array ``(T, H, W, C)`` (or ``(T, H, W)`` in grey) whose metadata says so
(``original_channel_dim``), so that MONAI's ``EnsureChannelFirst`` turns it into medst's video layout
``(C, T, H, W)``. Time is the first spatial axis: the affine is ``diag(time_spacing, 1, 1, 1)`` and the metadata
carries ``fps`` (frames per second of the array), ``time_spacing`` (seconds per frame), ``num_frames`` and
``frame_times`` (the presentation time of every returned frame, in seconds: the truth for variable frame rate).

Reading goes by content: any file that one of FFmpeg's demuxers opens with a video stream is a video (mp4 m4v mov
mkv webm avi gif mpg mpeg m1v m2v vob wmv asf flv f4v 3gp 3g2 ogv ogg rm swf ts mts m2ts and files without a
suffix); NIfTI, DICOM series and single frames, still images, NRRD/MHA, numpy files keep MONAI's readers (their
suffixes and magic bytes are checked first, and the probe never decodes). The frames that decode are the truth: a
container's declared frame count is only a hint. A stream that breaks part-way raises
:class:`~medst.data.CorruptFileError` naming the frame where decoding stopped, unless ``on_error="keep"``, which
returns the frames that decoded, logs a warning and sets ``decode_incomplete`` in the metadata.

Writing (PyAV 18's bundled FFmpeg):

| suffix | codec | lossless? |
|---|---|---|
| ``.mkv``, ``.avi`` | FFV1 (gray, gray16le, bgr0) | yes: labels 0..65535 and RGB read back exactly |
| ``.gif`` | GIF (gray / rgb8) | grey 8-bit only; frame delays are whole 1/100 s, so 29.97 fps reads back as 33.3 |
| ``.mp4``, ``.m4v``, ``.mov`` | H.264 (libx264, crf 18; yuv420p, yuv444p for odd sizes) | no: for viewing |
| ``.webm`` | VP9 (libvpx-vp9) | no: for viewing |

Label maps are written with their values unchanged (0..255 as uint8, up to 65535 as 16-bit with FFV1); a float
map in [0, 1] is a probability map and is scaled to 0..255.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import ImageReader, ImageWriter
from monai.data.image_writer import SUPPORTED_WRITERS, register_writer
from monai.data.image_writer import init as _init_monai_writers
from monai.utils import MetaKeys, SpaceKeys

from .utils import (
    CorruptFileError,
    DeferredReadError,
    MedstDataError,
    UnsupportedFormatError,
    atomic_write_path,
    check_readable_file,
    restore_io_tables,
)

__all__ = [
    "VIDEO_SUFFIXES",
    "WRITE_SUFFIXES",
    "LOSSLESS_SUFFIXES",
    "NON_VIDEO_SUFFIXES",
    "ON_ERROR",
    "VideoReader",
    "VideoWriter",
    "read_video",
    "write_video",
    "video_info",
    "count_frames",
    "is_dicom_cine",
    "is_video_file",
    "register_video_io",
    "unregister_video_io",
]

logger = logging.getLogger(__name__)

#: suffixes claimed as video without probing (any other file is probed by content); read through PyAV
VIDEO_SUFFIXES: tuple[str, ...] = (
    "mp4", "m4v", "mov", "mkv", "webm", "avi", "gif", "mpg", "mpeg", "m1v", "m2v", "vob", "wmv", "asf", "flv",
    "f4v", "3gp", "3g2", "ogv", "ogg", "rm", "rmvb", "swf", "ts", "mts", "m2ts", "mxf", "dv", "y4m", "mjpeg",
)
#: suffixes that :class:`VideoWriter` writes (``SaveImage(output_ext=...)``)
WRITE_SUFFIXES: tuple[str, ...] = ("mp4", "avi", "mov", "mkv", "webm", "gif", "m4v")
#: suffixes whose default codec is lossless (FFV1); ``gif`` is lossless for grey 8-bit frames only
LOSSLESS_SUFFIXES: tuple[str, ...] = ("mkv", "avi")
#: suffixes of what MONAI's other readers read (and text): never claimed by the video reader, never probed
NON_VIDEO_SUFFIXES: tuple[str, ...] = (
    "nii", "nii.gz", "gz", "hdr", "img", "mgh", "mgz", "nia", "par", "rec", "nrrd", "nhdr", "mha", "mhd", "raw",
    "vtk", "vti", "gipl", "lsm", "png", "jpg", "jpeg", "jp2", "bmp", "tif", "tiff", "webp", "pgm", "ppm", "pnm",
    "npy", "npz", "h5", "hdf5", "zarr", "pt", "pth", "pkl", "json", "yaml", "yml", "txt", "csv", "xml", "md",
    "zip", "tar", "py",
)
#: audio suffixes: an audio-only file is claimed so that the error says so (no MONAI reader reads audio)
_AUDIO_SUFFIXES = ("wav", "mp3", "flac", "aac", "m4a", "oga", "opus", "wma", "mka", "aiff", "aif")
_DICOM_SUFFIXES = ("dcm", "dicom")
#: what ``on_error`` accepts: ``"raise"`` (default) or ``"keep"`` (return the frames that decoded, with a warning)
ON_ERROR: tuple[str, ...] = ("raise", "keep")
# (0018,1063) FrameTime and (0018,1065) FrameTimeVector: the Frame Increment Pointer of a cine
_CINE_POINTERS = (0x00181063, 0x00181065)
# FFmpeg demuxers that read still images (or text): never taken as a video
_STILL_FORMATS = ("image2", "tty", "lavfi")
# containers whose header stores the video's duration (used to detect a file cut at a packet boundary)
_HEADER_DURATION_FORMATS = ("matroska", "webm", "flv", "avi", "asf", "mov", "mp4", "rm", "swf")
# a declared frame count (or duration) may exceed the decoded frames by this much without calling the file truncated
_HINT_TOLERANCE_FRAMES = 3
_HINT_TOLERANCE_FRACTION = 0.01
# FFmpeg's AVFMT_NOTIMESTAMPS: the demuxer stores no timestamps (raw elementary streams)
_AVFMT_NOTIMESTAMPS = 0x0080
# how many frames the decoder may reorder (B-frames): packets demuxed beyond the target frame when seeking
_REORDER_DEPTH = 16


def _suffix(path: str | os.PathLike) -> str:
    name = Path(str(path)).name.lower()
    return "nii.gz" if name.endswith(".nii.gz") else Path(name).suffix.lstrip(".")


def _channels_arg(channels: str | None, grey: bool | None) -> str:
    if grey is not None:
        return "grey" if grey else "rgb"
    c = (channels or "auto").lower()
    c = {"gray": "grey", "greyscale": "grey", "grayscale": "grey", "color": "rgb", "colour": "rgb"}.get(c, c)
    if c not in ("rgb", "grey", "auto"):
        raise ValueError(f"channels must be 'rgb', 'grey' or 'auto', got {channels!r}")
    return c


def _on_error_arg(on_error: str | None, strict: bool | None) -> str:
    if on_error is None:
        return "keep" if strict is False else "raise"
    value = str(on_error).lower()
    if value not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    return value


# ------------------------------------------------------------------------------------------ what is a video

_MAGIC_NON_VIDEO: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x1f\x8b", "gzip (e.g. .nii.gz)"),
    (344, b"n+1\x00", "NIfTI-1"),
    (344, b"ni1\x00", "NIfTI-1 header"),
    (4, b"n+2\x00", "NIfTI-2"),
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (0, b"BM", "BMP"),
    (0, b"NRRD", "NRRD"),
    (0, b"ObjectType", "MetaImage"),
    (0, b"NDims", "MetaImage"),
    (0, b"\x93NUMPY", "numpy"),
    (0, b"PK\x03\x04", "zip (e.g. .npz)"),
    (0, b"\x89HDF", "HDF5"),
    (0, b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
)


def _read_head(path: Path, size: int = 352) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)


def _magic_kind(path: Path) -> str | None:
    """``"dicom"``, the name of a known non-video format, or None, from the first bytes of ``path``."""
    try:
        head = _read_head(path)
    except OSError:
        return None
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    for offset, magic, name in _MAGIC_NON_VIDEO:
        if head[offset : offset + len(magic)] == magic:
            if magic == b"BM" and (len(head) < 6 or int.from_bytes(head[2:6], "little") != path.stat().st_size):
                continue  # "BM" starts many files: a BMP also stores its size there
            return name
    return None


_PROBE_CACHE: OrderedDict[tuple[str, int, int], dict | None] = OrderedDict()
_PROBE_LOCK = threading.Lock()
_PROBE_CACHE_SIZE = 4096


def _probe(path: Path) -> dict | None:
    """What FFmpeg's demuxers find in ``path`` (format, video and audio stream counts), or None when none opens it.

    Opens the container and reads its stream headers; decodes nothing itself. Cached per (path, mtime, size).
    """
    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    except OSError:
        return None
    with _PROBE_LOCK:
        if key in _PROBE_CACHE:
            _PROBE_CACHE.move_to_end(key)
            return _PROBE_CACHE[key]
    result = None
    try:
        av = _import_av()
        with av.open(str(path)) as c:
            fmt = c.format.name
            if not (fmt in _STILL_FORMATS or fmt.endswith("_pipe")):
                result = {
                    "format": fmt,
                    "video": sum(1 for s in c.streams.video if s.codec_context is not None),
                    "audio": len(c.streams.audio),
                }
    except Exception:  # noqa: BLE001 - FFmpegError, OSError, UnsupportedFormatError: not a video
        result = None
    with _PROBE_LOCK:
        _PROBE_CACHE[key] = result
        while len(_PROBE_CACHE) > _PROBE_CACHE_SIZE:
            _PROBE_CACHE.popitem(last=False)
    return result


def is_video_file(path: str | os.PathLike, dicom: bool | str = "cine") -> bool:
    """Whether the video reader claims ``path``, by content (cheap: suffix, magic bytes, then a cached probe).

    - a folder (a DICOM series), a missing file, NIfTI/PNG/JPEG/TIFF/NRRD/MetaImage/numpy by suffix or magic
      bytes: False;
    - a DICOM file (by suffix or the ``DICM`` preamble): True when it is a multi-frame cine (``dicom="cine"``),
      always (``dicom=True``) or never (``dicom=False``);
    - a video suffix (:data:`VIDEO_SUFFIXES`): True, without opening the file (a broken one then raises a clear
      error in the reader instead of falling through to other readers);
    - anything else: True when one of FFmpeg's demuxers (not a still-image one) opens it with a video stream, or
      it has an audio suffix (an audio-only file is then refused with a clear error).
    """
    p = Path(str(path)).expanduser()
    if not p.is_file():
        return False
    sfx = _suffix(p)
    if sfx in _DICOM_SUFFIXES:
        return bool(dicom) and (dicom is True or dicom != "cine" or is_dicom_cine(p))
    if sfx in NON_VIDEO_SUFFIXES:
        return False
    kind = _magic_kind(p)
    if kind == "dicom":
        return bool(dicom) and (dicom is True or dicom != "cine" or is_dicom_cine(p))
    if kind is not None:
        return False
    if sfx in VIDEO_SUFFIXES:
        return True
    info = _probe(p)
    if info is None:
        return False
    return info["video"] > 0 or (sfx in _AUDIO_SUFFIXES and info["audio"] > 0)


def is_dicom_cine(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a multi-frame DICOM cine (ultrasound, angiography): reads the header only.

    A cine has more than one frame and a Frame Increment Pointer to Frame Time or Frame Time Vector; enhanced
    multi-frame CT/MR volumes do not, so they stay with MONAI's DICOM readers.
    """
    try:
        import pydicom
        from pydicom.multival import MultiValue

        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    except Exception:  # not DICOM, or unreadable: not a cine this reader should claim
        return False
    try:
        n = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        return False
    ptr = ds.get("FrameIncrementPointer")  # one tag, or a list of tags (MultiValue)
    ptrs = [] if ptr is None else [int(p) for p in ptr] if isinstance(ptr, (list, tuple, MultiValue)) else [int(ptr)]
    return n > 1 and any(p in _CINE_POINTERS for p in ptrs)


def _is_dicom(path: Path) -> bool:
    return _suffix(path) in _DICOM_SUFFIXES or _magic_kind(path) == "dicom"


def _frame_range(start: int, stop: int | None, num_frames: int | None, stride: int, total: int | None
                 ) -> tuple[int, int | None]:
    if start < 0 or stride < 1:
        raise ValueError(f"start must be >= 0 and stride >= 1, got start={start}, stride={stride}")
    if stop is not None and num_frames is not None:
        raise ValueError("give either stop or num_frames, not both")
    if num_frames is not None:
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        stop = start + (num_frames - 1) * stride + 1
    if total is not None:
        stop = total if stop is None else min(stop, total)
    return start, stop


def video_info(path: str | os.PathLike) -> dict[str, Any]:
    """Frame rate, frame count, size and codec of a video or DICOM cine, without decoding frames.

    Returns:
        dict with ``fps`` (float), ``fps_fraction`` (:class:`fractions.Fraction` or None), ``num_frames``
        (int, or None when the container does not say; a hint, see :func:`count_frames`), ``height``, ``width``,
        ``codec``, ``pix_fmt``, ``format`` (FFmpeg's demuxer).
    """
    p = check_readable_file(path)
    if _is_dicom(p):
        ds = _dcmread(p, header_only=True)
        fps = _dicom_fps(ds)
        return {
            "fps": fps, "fps_fraction": None, "num_frames": int(ds.get("NumberOfFrames", 1) or 1),
            "height": int(ds.Rows), "width": int(ds.Columns), "codec": "dicom",
            "pix_fmt": str(ds.get("PhotometricInterpretation", "")), "format": "dicom",
        }
    av = _import_av()
    with _open_container(p) as container:
        stream = _video_stream(container, p)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        return {
            "fps": float(rate) if rate else float("nan"),
            "fps_fraction": Fraction(rate) if rate else None,
            "num_frames": int(stream.frames) if stream.frames else None,
            "height": int(stream.codec_context.height),
            "width": int(stream.codec_context.width),
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "format": container.format.name,
            "duration": float(stream.duration * stream.time_base) if stream.duration and stream.time_base
            else (container.duration / 1e6 if container.duration else None),
            "av_version": av.__version__,
        }


def count_frames(path: str | os.PathLike, exact: bool = False) -> int:
    """The number of frames of a video or DICOM cine without decoding any.

    Uses the container's frame count when it stores one (mp4, avi, DICOM) and ``exact`` is False, else counts the
    non-empty video packets (one per frame), which reads the file but decodes nothing. A declared count is a hint
    (an .avi may declare dropped frames); ``exact=True`` counts packets even then.
    """
    p = check_readable_file(path)
    if _is_dicom(p):
        return int(video_info(p)["num_frames"])
    if not exact:
        info = video_info(p)
        if info["num_frames"]:
            return int(info["num_frames"])
    with _open_container(p) as container:
        stream = _video_stream(container, p)
        try:
            return sum(1 for packet in container.demux(stream) if packet.size)
        except _import_av().error.FFmpegError as e:
            raise CorruptFileError(f"{p}: cannot read the video packets ({e})") from e


def _import_av():
    try:
        import av
    except ImportError as e:  # pragma: no cover - av is a dependency
        raise UnsupportedFormatError("reading and writing videos needs PyAV: pip install av") from e
    return av


def _open_container(path: Path, mode: str = "r", **kwargs):
    av = _import_av()
    try:
        return av.open(str(path), mode=mode, **kwargs)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except PermissionError as e:
        raise PermissionError(f"{path}: permission denied") from e
    except av.error.FFmpegError as e:
        if isinstance(e, getattr(av.error, "PermissionError", ())) or not os.access(path, os.R_OK):
            raise PermissionError(f"{path}: permission denied ({e})") from e
        if mode == "r" and _suffix(path) not in VIDEO_SUFFIXES:
            raise UnsupportedFormatError(
                f"{path}: not a video that FFmpeg can open ({e}); medst reads videos "
                f"({', '.join(VIDEO_SUFFIXES)}) and multi-frame DICOM cine"
            ) from e
        raise CorruptFileError(f"{path}: cannot open as a video ({e}); the file may be truncated or corrupt") from e


def _video_stream(container, path: Path):
    if not container.streams.video:
        audio = len(container.streams.audio)
        what = f"audio only: {audio} audio stream(s)" if audio else f"streams: {len(container.streams)}"
        raise UnsupportedFormatError(f"{path}: the file has no video stream ({what})")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise UnsupportedFormatError(f"{path}: the video codec is not supported by this FFmpeg build")
    return stream


# frame threading pays from about 100x100 pixels; below, its hand-offs cost more than the decode (64x64 H.264 on
# 2 cores: 867 frames/s with "AUTO" against 1,802 with slice threads; 640x480: 313 against 206)
_FRAME_THREADS_MIN_PIXELS = 96 * 96


def _set_decode_threads(stream) -> None:
    """Frame and slice threading for frames large enough to gain from it, slice threading only for small frames."""
    area = int(stream.codec_context.width or 0) * int(stream.codec_context.height or 0)
    stream.thread_type = "AUTO" if area >= _FRAME_THREADS_MIN_PIXELS or area == 0 else "SLICE"


def _gray_format(pix_fmt: str | None) -> str | None:
    """The ndarray format to decode a grey stream to, or None when the stream is in colour."""
    if not pix_fmt:
        return None
    if pix_fmt.startswith(("gray", "ya")):
        return "gray16le" if any(b in pix_fmt for b in ("9", "10", "12", "14", "16")) else "gray"
    return None


#: 8-bit pixel formats whose first plane is the luma, full size: grey is that plane through a level mapping
_LUMA_FIRST_8BIT = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p",
                              "yuvj440p", "yuv411p", "yuvj411p", "yuv410p", "nv12", "nv21"})


class _FrameConverter:
    """``frame.to_ndarray(format=fmt)``, the same values, faster for grey frames from 8-bit YUV streams.

    Converting a YUV frame to grey with swscale (``to_ndarray(format="gray")``) maps each luma value through the
    stream's levels (limited-range 16..235 to 0..255) and costs 5-10x the decoding of a small frame (64x64 H.264:
    about 1 ms against 0.15 ms a frame). The value of a grey pixel depends on its luma value alone, so here the luma
    plane is read directly and mapped through a 256-entry table: swscale's own, read once per pixel format, range and
    colour space by converting a frame holding every luma value. The table is checked on the first real frame of
    each kind (against swscale's conversion of it) and dropped for that kind, to swscale itself, if they differ.
    """

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self._luts: dict[tuple, np.ndarray | None] = {}

    def _table(self, frame) -> np.ndarray | None:
        av = _import_av()
        probe = av.VideoFrame(16, 16, frame.format.name)
        probe.color_range, probe.colorspace = frame.color_range, frame.colorspace
        y = probe.planes[0]
        luma = np.zeros((16, y.line_size), np.uint8)
        luma[:, :16] = np.arange(256, dtype=np.uint8).reshape(16, 16)
        y.update(luma.tobytes())
        for plane in probe.planes[1:]:
            plane.update(bytes([128]) * plane.buffer_size)
        lut = np.ascontiguousarray(probe.to_ndarray(format="gray").reshape(256))
        if not np.array_equal(self._luma(frame, lut), frame.to_ndarray(format="gray")):
            logger.debug("grey from %s: the luma table differs from swscale; converting with swscale", frame.format.name)
            return None
        return lut

    @staticmethod
    def _luma(frame, lut: np.ndarray) -> np.ndarray:
        plane = frame.planes[0]
        y = np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)[:, : frame.width]
        return lut[y]  # a new array: the frame's buffer is free for FFmpeg to reuse

    def __call__(self, frame) -> np.ndarray:
        if self.fmt == "gray" and frame.format.name in _LUMA_FIRST_8BIT:
            key = (frame.format.name, frame.color_range, frame.colorspace)
            if key not in self._luts:
                self._luts[key] = self._table(frame)
            lut = self._luts[key]
            if lut is not None:
                return self._luma(frame, lut)
        return frame.to_ndarray(format=self.fmt)


class _Stop(Exception):
    """Internal: the requested frames are all decoded."""


class _FrameBuffer:
    """Frames copied, as they decode, into one preallocated (T, H, W[, C]) array that grows by doubling.

    Sized from the container's frame count when it has one (a hint: a wrong one costs a regrow, never a wrong
    result). Copying each frame at once lets FFmpeg reuse the buffer it converted the frame into, instead of holding
    every frame's buffer and stacking them at the end (a second whole-video copy, in fresh memory).
    """

    def __init__(self, hint: int | None) -> None:
        self.hint = max(1, min(int(hint), 1 << 16)) if hint else 64
        self.data: np.ndarray | None = None
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def append(self, frame: np.ndarray) -> None:
        if self.data is None:
            self.data = np.empty((self.hint, *frame.shape), dtype=frame.dtype)
        elif self.n == self.data.shape[0]:
            grown = np.empty((2 * self.n, *self.data.shape[1:]), dtype=self.data.dtype)
            grown[: self.n] = self.data
            self.data = grown
        self.data[self.n] = frame
        self.n += 1

    def result(self) -> np.ndarray:
        assert self.data is not None
        return self.data[: self.n] if self.n < self.data.shape[0] else self.data


def _pts_of_frame(container, stream, index: int) -> int | None:
    """The presentation timestamp of frame ``index`` (0-based, in presentation order), from packets only.

    Demuxes (without decoding) the packets up to ``index`` plus the decoder's reorder depth and sorts their
    timestamps; None when a packet has no timestamp or the stream has fewer packets (then decode from the start).
    """
    pts: list[int] = []
    for packet in container.demux(stream):
        if not packet.size:
            continue
        if packet.pts is None:
            return None
        pts.append(int(packet.pts))
        if len(pts) > index + _REORDER_DEPTH:
            break
    if len(pts) <= index:
        return None
    pts.sort()
    if len(set(pts)) != len(pts):  # duplicate timestamps: counting by pts would be ambiguous
        return None
    return pts[index]


def _decode_frames(container, stream, fmt: str, fps: Fraction, start: int, stop: int | None, stride: int,
                   target_pts: int | None, use_pts: bool = True, hint: int | None = None) -> dict:
    """Decode from where ``container`` is. With ``target_pts`` the frame with that pts is frame ``start`` (after a
    seek to the key frame before it) and later frames are counted from it; else frames are counted from the first.

    Returns a dict: ``frames`` (arrays), ``times`` (seconds), ``last`` (index of the last frame decoded), ``eof``
    (the stream ended), ``error`` (why decoding stopped early, or None), ``overshoot`` (the seek went past the
    target: decode from the start instead), ``empty_packets``, ``last_time``.
    """
    av = _import_av()
    tb = stream.time_base
    t0 = stream.start_time or 0
    state: dict[str, Any] = {"frames": _FrameBuffer(hint), "times": [], "last": -1, "error": None, "eof": False,
                             "overshoot": False, "empty_packets": 0, "last_time": None}
    idx = start - 1 if target_pts is not None else -1
    found = target_pts is None
    key_seen = False
    convert = _FrameConverter(fmt)

    def take(frame) -> None:
        nonlocal idx, found, key_seen
        if not found:
            key_seen = key_seen or bool(frame.key_frame)
            if frame.pts is None or frame.pts > target_pts:
                # the first frame after the seek is already past the target, or the target never came out
                state["overshoot"] = True
                raise _Stop
            if frame.pts < target_pts:
                return
            if not key_seen:  # a seek that did not land on a key frame: frames before one may be damaged
                state["overshoot"] = True
                raise _Stop
            found = True
        idx += 1
        state["last"] = idx
        t = float((frame.pts - t0) * tb) if use_pts and frame.pts is not None and tb is not None else float(idx / fps)
        state["last_time"] = t
        if stop is not None and idx >= stop:
            state["last"] = idx - 1
            raise _Stop
        if idx < start or (idx - start) % stride:
            return
        state["frames"].append(convert(frame))
        state["times"].append(t)

    try:
        for packet in container.demux(stream):
            if packet.size and packet.is_corrupt:  # a cut or damaged packet: keep what decodes before it
                for frame in stream.decode(None):
                    take(frame)
                state["error"] = "a corrupt or incomplete packet (the file may be truncated)"
                break
            if packet.size == 0 and packet.pts is not None:
                state["empty_packets"] += 1
            for frame in packet.decode():
                take(frame)
        else:
            state["eof"] = True
    except _Stop:
        pass
    except av.error.FFmpegError as e:
        state["error"] = f"{type(e).__name__}: {e}"
    if not found and not state["overshoot"]:  # the decoder never gave the target frame (no key frame after the seek)
        state["overshoot"] = True
    return state


def _read_av(path: Path, channels: str, start: int, stop: int | None, stride: int, on_error: str
             ) -> tuple[np.ndarray, dict]:
    """Decode frames ``start, start + stride, ...`` before ``stop`` of the first video stream of ``path``.

    A range that starts after frame 0 seeks to the key frame before it (found from the packets' timestamps, so that
    the index is exact at variable frame rate), and decodes from the start when the container cannot seek.
    """
    av = _import_av()
    state = None
    for attempt in ("seek", "start") if start > 0 else ("start",):
        with _open_container(path) as container:
            stream = _video_stream(container, path)
            _set_decode_threads(stream)
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            if not rate:
                raise CorruptFileError(f"{path}: the video stream has no frame rate")
            fps = Fraction(rate)
            tb = stream.time_base
            declared = int(stream.frames) if stream.frames else None
            pix_fmt = stream.codec_context.pix_fmt
            codec = stream.codec_context.name
            grey_fmt = _gray_format(pix_fmt)
            ch = ("grey" if grey_fmt else "rgb") if channels == "auto" else channels
            fmt = (grey_fmt or "gray") if ch == "grey" else "rgb24"
            fmt_name = container.format.name
            # raw elementary streams (.m1v, .h264): FFmpeg makes timestamps up; count frames instead
            use_pts = not (container.format.flags & _AVFMT_NOTIMESTAMPS)
            header_seconds = None
            if stream.duration and tb:
                header_seconds = float(stream.duration * tb)
            elif container.duration and len(container.streams) == 1:
                header_seconds = container.duration / 1e6
            target = None
            if attempt == "seek":
                if tb is None or not use_pts:
                    continue
                try:
                    target = _pts_of_frame(container, stream, start)
                    if target is None:
                        continue
                    container.seek(target, stream=stream, backward=True, any_frame=False)
                except av.error.FFmpegError:  # a container that cannot seek, or a broken index
                    logger.debug("%s: cannot seek to frame %d, decoding from the start", path, start)
                    continue
            total = declared if stop is None else (min(stop, declared) if declared else stop)
            hint = -(-(total - start) // stride) if total and total > start else None
            state = _decode_frames(container, stream, fmt, fps, start, stop, stride, target, use_pts, hint)
            if state["overshoot"]:
                logger.debug("%s: the seek went past frame %d, decoding from the start", path, start)
                continue
            break
    assert state is not None
    frames, times = state["frames"], state["times"]
    decoded_total = state["last"] + 1  # frames in the file, when the end was reached
    error = state["error"]
    if error is None and state["eof"]:
        # the stream ended cleanly; a header that promised clearly more is a file cut at a packet boundary
        tolerance = max(_HINT_TOLERANCE_FRAMES, math.ceil(_HINT_TOLERANCE_FRACTION * (declared or decoded_total)))
        missing = None
        if declared:
            missing = declared - decoded_total - state["empty_packets"]
        elif header_seconds and state["last_time"] is not None and any(
            f in fmt_name.split(",") for f in _HEADER_DURATION_FORMATS
        ):
            missing = int(math.floor((header_seconds - state["last_time"]) * float(fps) - 1.0 + 1e-6))
        if missing is not None and missing > tolerance:
            what = f"declares {declared} frames" if declared else f"declares {header_seconds:.3f} s"
            error = f"the container {what} but the stream ended after {decoded_total} frames (truncated?)"
        elif declared and decoded_total != declared:
            logger.info("%s: the container declares %d frames, %d decoded (the decoded frames are used)",
                        path, declared, decoded_total)
    meta: dict[str, Any] = {
        "fps_source": float(fps),
        "source_num_frames": declared,
        "codec": codec,
        "pix_fmt": pix_fmt,
        "container_format": fmt_name,
        "decode_incomplete": error is not None,
        "frames_decoded": len(frames),
    }
    if error is not None:
        where = state["last"] + 1
        msg = (f"{path}: decoding stopped at frame {where}: {error}; "
               f"{len(frames)} of the requested frames decoded before it")
        if on_error != "keep" or not frames:
            raise CorruptFileError(msg + (". Pass on_error='keep' to use them" if frames else ""))
        logger.warning("%s; on_error='keep': returning them", msg)
        meta["decode_error"] = msg
        meta["decode_stopped_at_frame"] = int(where)
    if not frames:
        what = "has zero frames" if start == 0 else f"has no frames in the range start={start}, stop={stop}"
        raise MedstDataError(f"{path}: the video {what}")
    arr = frames.result()
    del frames
    if channels == "auto" and arr.ndim == 4 and grey_fmt is None and codec == "gif":
        # the GIF decoder always outputs colour (bgra); a grey GIF (as medst writes label maps) stays grey
        if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]):
            arr = np.ascontiguousarray(arr[..., 0])
    meta["frame_times"] = np.asarray(times, dtype=np.float64)
    return arr, meta


def _dcmread(path: Path, header_only: bool = False):
    try:
        import pydicom

        return pydicom.dcmread(str(path), stop_before_pixels=header_only)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except Exception as e:
        raise CorruptFileError(f"{path}: cannot read as DICOM ({e})") from e


def _dicom_fps(ds) -> float:
    ft = ds.get("FrameTime")
    if ft:
        return 1000.0 / float(ft)
    ftv = ds.get("FrameTimeVector")
    if ftv and len(ftv) > 1:
        steps = [float(v) for v in list(ftv)[1:] if float(v) > 0]
        if steps:
            return 1000.0 / float(np.mean(steps))
    for key in ("CineRate", "RecommendedDisplayFrameRate"):
        v = ds.get(key)
        if v:
            return float(v)
    return float("nan")


def _read_dicom(path: Path, channels: str, start: int, stop: int | None, stride: int) -> tuple[np.ndarray, dict]:
    from pydicom.pixels import pixel_array

    ds = _dcmread(path, header_only=True)
    n = int(ds.get("NumberOfFrames", 1) or 1)
    if "Rows" not in ds or "Columns" not in ds:
        raise MedstDataError(f"{path}: the DICOM file has no image (no Rows/Columns)")
    start, stop = _frame_range(start, stop, None, stride, n)
    indices = list(range(start, stop, stride))
    if not indices:
        raise MedstDataError(f"{path}: the DICOM cine has no frames in the range start={start}, stop={stop}")
    try:
        if len(indices) == n:
            arr = pixel_array(str(path))  # YBR is converted to RGB by pydicom (as_rgb=True)
            if n == 1:
                arr = arr[None]
        else:
            arr = np.stack([pixel_array(str(path), index=i) for i in indices], 0)
    except Exception as e:
        raise CorruptFileError(f"{path}: cannot decode the DICOM pixel data ({e})") from e
    photometric = str(ds.get("PhotometricInterpretation", ""))
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples == 1:
        if channels == "rgb":
            arr = np.repeat(arr[..., None], 3, axis=-1)
    elif channels == "grey":
        arr = _rgb_to_grey(arr)
    fps = _dicom_fps(ds)
    meta = {
        "fps_source": fps,
        "source_num_frames": n,
        "codec": "dicom",
        "pix_fmt": photometric,
        "Modality": str(ds.get("Modality", "")),
    }
    return arr, meta


def _rgb_to_grey(arr: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of an RGB array (..., 3), in the input's integer type."""
    y = arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114
    if np.issubdtype(arr.dtype, np.integer):
        y = np.clip(np.round(y), np.iinfo(arr.dtype).min, np.iinfo(arr.dtype).max)
    return y.astype(arr.dtype)


def read_video(
    path: str | os.PathLike,
    channels: str = "auto",
    start: int = 0,
    stop: int | None = None,
    num_frames: int | None = None,
    stride: int = 1,
    grey: bool | None = None,
    strict: bool | None = None,
    on_error: str | None = None,
    dtype: Any = None,
) -> tuple[np.ndarray, dict]:
    """Decode a video file or a DICOM cine into a channel-last array.

    Only frames ``start, start + stride, ...`` before ``stop`` are decoded (at most ``num_frames`` of them); a
    video seeks to the key frame before ``start`` instead of decoding from the beginning, and counts frames by
    their timestamps from there, so that the frame index is exact at a variable frame rate too.

    Args:
        path: a video in any container FFmpeg reads (the suffix does not matter) or a multi-frame DICOM.
        channels: ``"rgb"`` (3 channels), ``"grey"`` (1 channel) or ``"auto"`` (grey streams stay grey).
        start: first frame index (0-based, in presentation order).
        stop: frame index to stop before (exclusive); ``None``: the end.
        num_frames: the number of frames to return (instead of ``stop``).
        stride: keep every ``stride``-th frame.
        grey: shortcut for ``channels``: True -> "grey", False -> "rgb".
        strict: older spelling of ``on_error``: False is ``on_error="keep"``.
        on_error: ``"raise"`` (default): a stream that breaks part-way (a decoding error, a cut packet, or a clean
            end well before the frame count or duration the container declares) raises
            :class:`CorruptFileError` naming the file and the frame where decoding stopped; ``"keep"``: return the
            frames that decoded, log a warning and set ``decode_incomplete``, ``decode_error`` and
            ``decode_stopped_at_frame`` in the metadata.
        dtype: data type of the array (default: the decoded uint8, or uint16 for 16-bit grey); converted in place
            of the decoded array, never as a second whole-video copy.

    Returns:
        ``(array, meta)``: ``array`` is (T, H, W, 3) for RGB or (T, H, W) for grey; ``meta`` has ``fps`` (of the
        returned frames, i.e. divided by ``stride``), ``time_spacing``, ``num_frames``, ``start_frame``,
        ``frame_stride``, ``frame_times`` (seconds from the stream's start, one per returned frame), ``start_time``,
        ``fps_source``, ``source_num_frames`` (the container's declared count: a hint, absent when not stored),
        ``frames_decoded``, ``decode_incomplete`` and the codec.

    Raises:
        FileNotFoundError: missing file. PermissionError: unreadable file. CorruptFileError: undecodable or broken
        file. MedstDataError: zero frames (in the range). UnsupportedFormatError: not a video (a NIfTI, a still
        image, an audio-only file, bytes no FFmpeg demuxer opens).
    """
    p = check_readable_file(path)
    if not os.access(p, os.R_OK):
        raise PermissionError(f"{p}: permission denied")
    ch = _channels_arg(channels, grey)
    policy = _on_error_arg(on_error, strict)
    start, stop = _frame_range(int(start), stop, num_frames, int(stride), None)
    sfx = _suffix(p)
    if _is_dicom(p):
        arr, meta = _read_dicom(p, ch, start, stop, stride)
    else:
        kind = None if sfx in NON_VIDEO_SUFFIXES else _magic_kind(p)
        if kind is not None or sfx in NON_VIDEO_SUFFIXES:
            what = f"{kind} content" if kind else f"a .{sfx} file"
            raise UnsupportedFormatError(
                f"{p}: not a video ({what}); medst's video reader reads what FFmpeg's demuxers open and multi-frame "
                "DICOM cine: give this file to a reader (or a bundle) for its format"
            )
        arr, meta = _read_av(p, ch, start, stop, stride, policy)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    fps_src = meta["fps_source"]
    fps = fps_src / stride if fps_src and not math.isnan(fps_src) else float("nan")
    if "frame_times" not in meta:  # DICOM: evenly spaced
        meta["frame_times"] = (start + stride * np.arange(arr.shape[0], dtype=np.float64)) / (
            fps_src if fps_src and not math.isnan(fps_src) else 1.0)
    times = np.asarray(meta["frame_times"], dtype=np.float64)
    meta.update(
        fps=float(fps),
        time_spacing=float(1.0 / fps) if fps and not math.isnan(fps) else 1.0,
        num_frames=int(arr.shape[0]),
        start_frame=int(start),
        frame_stride=int(stride),
        start_time=float(times[0]) if times.size else 0.0,
    )
    if times.size > 2:
        steps = np.diff(times)
        meta["variable_frame_rate"] = bool(np.ptp(steps) > 0.01 * max(float(np.median(steps)), 1e-9))
    else:
        meta["variable_frame_rate"] = False
    if math.isnan(fps):
        logger.warning("%s: no frame rate in the file; time_spacing set to 1", p)
    # no None values: MONAI's list_data_collate cannot collate them (e.g. a frame count that mkv does not store)
    meta = {k: v for k, v in meta.items() if v is not None}
    return arr, meta


class VideoReader(ImageReader):
    """MONAI image reader for videos (PyAV) and multi-frame DICOM cine (pydicom).

    ``LoadImage()`` picks it by content once medst is imported (:func:`is_video_file`: any file one of FFmpeg's
    demuxers opens with a video stream, and .dcm files that are multi-frame cine; never NIfTI, DICOM series or
    single frames, still images, NRRD/MHA or numpy files); a bundle config can also name it:
    ``"reader": "VideoReader"`` or ``"medst.data.VideoReader"``. Then its errors reach the user as they are
    (a truncated video, a NIfTI given to a video bundle), not as MONAI's "cannot find a suitable reader".
    The array is channel-last, (T, H, W, C) or (T, H, W) in grey, and ``EnsureChannelFirst`` makes it
    (C, T, H, W).

    Args:
        channels: ``"rgb"``, ``"grey"`` or ``"auto"`` (grey streams stay grey, colour ones are RGB).
        grey: shortcut for ``channels``.
        start, stop, num_frames, stride: the frames to decode (see :func:`read_video`).
        dicom: ``"cine"`` (default): claim .dcm files only when they are multi-frame cine; ``True``: claim every
            .dcm file; ``False``: never claim .dcm (it still reads one when named explicitly).
        on_error: ``"raise"`` (default) or ``"keep"``: what to do with a stream that breaks part-way
            (see :func:`read_video`).
        strict: older spelling: ``strict=False`` is ``on_error="keep"``.
        frame_times: put ``frame_times`` (seconds, one per frame) in the metadata: ``"auto"`` (default) when the
            frame rate is variable (at a constant rate they follow from the affine: ``start_time + i / fps``, and a
            per-frame array would stop MONAI's collate from batching clips of different lengths), True: always,
            False: never. ``variable_frame_rate`` is always there.
        dtype: data type of the array (default None: the decoded uint8, uint16 for 16-bit grey). Note that
            ``LoadImage``'s own ``dtype`` (float32 unless given) converts after the reader: pass
            ``LoadImage(dtype=None)`` (``"dtype": null`` in a config) to keep uint8 until the network.

    Example::

        # a uint8 MetaTensor (3, 120, 144, 176)
        img = LoadImage(ensure_channel_first=True, dtype=None)(sample_file("video_carphone"))
    """

    def __init__(
        self,
        channels: str = "auto",
        grey: bool | None = None,
        start: int = 0,
        stop: int | None = None,
        num_frames: int | None = None,
        stride: int = 1,
        dicom: bool | str = "cine",
        on_error: str | None = None,
        strict: bool | None = None,
        frame_times: bool | str = "auto",
        dtype: Any = None,
        **kwargs,
    ) -> None:
        super().__init__()
        if frame_times not in (True, False, "auto"):
            raise ValueError(f"frame_times must be True, False or 'auto', got {frame_times!r}")
        self.frame_times = frame_times
        self.channels = _channels_arg(channels, grey)
        _frame_range(int(start), stop, num_frames, int(stride), None)  # validate early
        self.start, self.stop, self.num_frames, self.stride = int(start), stop, num_frames, int(stride)
        self.dicom = dicom
        self.on_error = _on_error_arg(on_error, strict)
        self.dtype = dtype
        self.kwargs = kwargs

    def verify_suffix(self, filename: Sequence[os.PathLike | str] | os.PathLike | str) -> bool:
        """Whether every file is a video (by content, see :func:`is_video_file`); the name is MONAI's."""
        names = [filename] if isinstance(filename, (str, os.PathLike)) else list(filename)
        if not names:
            return False
        return all(isinstance(n, (str, os.PathLike)) and is_video_file(n, dicom=self.dicom) for n in names)

    #: errors of files that are not videos are final too (the class named in a config); see :meth:`read`
    _errors_are_final = True

    def read(self, data: Sequence[os.PathLike | str] | os.PathLike | str, **kwargs):
        """Decode each file.

        An error is returned (as a deferred error that :meth:`get_data` raises), not raised, so that ``LoadImage``
        with this reader named reports it instead of trying its other readers: for every file when this class is
        named (``"medst.data.VideoReader"``, the class or an instance: a NIfTI given to a video bundle is refused),
        and for videos only in the copy that ``LoadImage()`` registers by default (``"VideoReader"`` names that one),
        so that it never stops ``LoadImage`` from trying its other readers on a file that is not a video.
        """
        names = [data] if isinstance(data, (str, os.PathLike)) else list(data)
        opts = {
            "channels": self.channels, "start": self.start, "stop": self.stop, "num_frames": self.num_frames,
            "stride": self.stride, "on_error": self.on_error,
        }
        if "strict" in kwargs:
            opts["on_error"] = _on_error_arg(kwargs.pop("on_error", None), kwargs.pop("strict"))
        opts.update(kwargs)
        try:
            return [(*read_video(n, **opts), str(n)) for n in names]
        except (OSError, ValueError, RuntimeError) as e:  # MedstDataError is a ValueError
            if self._errors_are_final or all(is_video_file(n, dicom=self.dicom) for n in names):
                return DeferredReadError(e)
            raise  # not a video: LoadImage tries its other readers

    def get_data(self, img) -> tuple[np.ndarray, dict]:
        if isinstance(img, DeferredReadError):
            raise img.error
        items = img if isinstance(img, list) else [img]
        arrays, metas = [], []
        for arr, meta, name in items:
            arrays.append(arr)
            metas.append(meta)
        shapes = {a.shape[:3] for a in arrays}
        if len(shapes) > 1:
            raise MedstDataError(f"videos {[i[2] for i in items]} differ in frames or size: {sorted(shapes)}")
        if len(arrays) == 1:
            data = arrays[0]
        else:  # several files: stack as channels
            data = np.concatenate([a if a.ndim == 4 else a[..., None] for a in arrays], axis=-1)
        meta = dict(metas[0])
        if self.frame_times is False or (self.frame_times == "auto" and not meta.get("variable_frame_rate")):
            meta.pop("frame_times", None)
        ts = float(meta["time_spacing"])
        affine = np.diag([ts, 1.0, 1.0, 1.0])
        affine[0, 3] = float(meta.get("start_time", 0.0))  # t = 0 at the first frame of the file
        meta[MetaKeys.AFFINE] = affine
        meta[MetaKeys.ORIGINAL_AFFINE] = affine.copy()
        meta[MetaKeys.SPATIAL_SHAPE] = np.asarray(data.shape[:3])
        meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = -1 if data.ndim == 4 else float("nan")
        meta[MetaKeys.SPACE] = SpaceKeys.RAS
        if self.dtype is not None:
            data = data.astype(self.dtype, copy=False)
        return data, meta


# ---------------------------------------------------------------------------------------------------- writing

_CODECS: dict[str, tuple[str, dict[str, str]]] = {
    "mkv": ("ffv1", {}),
    "avi": ("ffv1", {}),
    "mp4": ("libx264", {"crf": "18", "preset": "medium"}),
    "m4v": ("libx264", {"crf": "18", "preset": "medium"}),
    "mov": ("libx264", {"crf": "18", "preset": "medium"}),
    "webm": ("libvpx-vp9", {"crf": "30", "b:v": "0"}),
    "gif": ("gif", {}),
}


def _to_uint(frames: np.ndarray, path: Path, scale: int | None) -> np.ndarray:
    """Frames as uint8 (or uint16) without silently changing label values."""
    a = np.asarray(frames)
    if a.dtype == np.bool_:
        return a.astype(np.uint8)
    if scale is not None:
        a = np.clip(a.astype(np.float64), 0.0, 1.0) * float(scale)
        return np.round(a).astype(np.uint16 if scale > 255 else np.uint8)
    if not np.all(np.isfinite(a)):
        raise MedstDataError(f"{path}: the frames contain NaN or infinity")
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    integral = np.issubdtype(a.dtype, np.integer) or bool(np.all(a == np.round(a)))
    if integral and lo >= 0 and hi <= 255:
        return a.astype(np.uint8)
    if integral and lo >= 0 and hi <= 65535:
        return a.astype(np.uint16)
    if not integral and lo >= 0 and hi <= 1:  # a probability map
        return np.round(a * 255.0).astype(np.uint8)
    raise MedstDataError(
        f"{path}: cannot write values in [{lo}, {hi}] ({a.dtype}) as a video; give labels in 0..65535, "
        "probabilities in [0, 1], or uint8 intensities (or pass scale=255 to map [0, 1] to 0..255)"
    )


def write_video(
    frames: np.ndarray | torch.Tensor,
    path: str | os.PathLike,
    fps: float | Fraction = 25.0,
    codec: str | None = None,
    lossless: bool | None = None,
    options: Mapping[str, str] | None = None,
    channel_last: bool = True,
    scale: int | None = None,
    inputs: Sequence[str | os.PathLike] | str | None = None,
) -> Path:
    """Write frames as a video file, atomically (a temporary file renamed into place).

    Args:
        frames: (T, H, W) grey or (T, H, W, C) with C in {1, 3} when ``channel_last``; (C, T, H, W) otherwise.
            Integer labels 0..255 are written unchanged (0..65535 with FFV1), floats in [0, 1] as probabilities x255.
        path: output file; the suffix picks the container and default codec (.mkv/.avi: FFV1 lossless;
            .gif: lossless for grey; .mp4/.mov: H.264, .webm: VP9, both lossy).
        fps: frame rate.
        codec: override the codec (any PyAV encoder name).
        lossless: require a lossless result: raises for suffixes whose codec is lossy.
        options: extra encoder options (FFmpeg names, e.g. ``{"crf": "23"}``).
        channel_last: layout of ``frames``.
        scale: map [0, 1] to 0..scale (255 or 65535) before writing.
        inputs: input files that must not be overwritten.

    Returns:
        the path written.
    """
    av = _import_av()
    path = Path(path).expanduser()
    sfx = _suffix(path)
    if sfx not in _CODECS:
        raise UnsupportedFormatError(f"{path}: unsupported video suffix {sfx!r}; use one of {tuple(_CODECS)}")
    a = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if not channel_last:
        if a.ndim != 4:
            raise MedstDataError(f"{path}: expected (C, T, H, W) frames, got shape {a.shape}")
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 4 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (3, 4) or (a.ndim == 4 and a.shape[-1] != 3):
        raise MedstDataError(
            f"{path}: a video needs (T, H, W) or (T, H, W, 3) frames (channel first: (1|3, T, H, W)), got {a.shape}"
        )
    if a.shape[0] == 0 or a.shape[1] == 0 or a.shape[2] == 0:
        raise MedstDataError(f"{path}: cannot write a video with zero frames or an empty frame, shape {a.shape}")
    fps = float(fps)
    if not fps > 0 or not math.isfinite(fps):
        raise MedstDataError(f"{path}: the frame rate must be positive, got {fps}")
    a = _to_uint(a, path, scale)
    grey = a.ndim == 3
    codec_name, opts = _CODECS[sfx]
    if codec is not None:
        codec_name, opts = codec, {}
    is_lossless = codec_name == "ffv1" or (codec_name == "gif" and grey)
    if lossless and not is_lossless:
        raise UnsupportedFormatError(
            f"{path}: {codec_name} in .{sfx} is lossy for these frames; write lossless labels to .mkv or .avi (FFV1)"
        )
    if a.dtype == np.uint16 and codec_name != "ffv1":
        raise UnsupportedFormatError(f"{path}: values above 255 need a 16-bit lossless codec: write .mkv or .avi")
    h, w = a.shape[1:3]
    if codec_name == "ffv1":
        pix_fmt, in_fmt = ("gray16le", "gray16le") if a.dtype == np.uint16 else (("gray", "gray") if grey
                                                                                   else ("bgr0", "rgb24"))
    elif codec_name == "gif":
        pix_fmt, in_fmt = ("gray", "gray") if grey else ("rgb8", "rgb24")
    elif codec_name in ("libx264", "libvpx-vp9", "libvpx", "mpeg4"):
        pix_fmt = "yuv420p" if (h % 2 == 0 and w % 2 == 0) else "yuv444p"
        if codec_name in ("mpeg4", "libvpx") and pix_fmt != "yuv420p":
            raise UnsupportedFormatError(f"{path}: {codec_name} needs an even frame size, got {h}x{w}")
        in_fmt = "gray" if grey else "rgb24"
    else:
        pix_fmt, in_fmt = None, "gray" if grey else "rgb24"
    if options:
        opts = {**opts, **{str(k): str(v) for k, v in options.items()}}
    try:
        av.codec.Codec(codec_name, "w")
    except Exception as e:  # UnknownCodecError
        raise UnsupportedFormatError(f"{path}: this FFmpeg build has no encoder {codec_name!r} ({e})") from e
    rate = Fraction(fps).limit_denominator(1001 * 1000)
    with atomic_write_path(path, inputs=inputs) as tmp:
        try:
            with av.open(str(tmp), mode="w", format=None) as container:
                stream = container.add_stream(codec_name, rate=rate, options=opts)
                stream.width, stream.height = w, h
                if pix_fmt:
                    stream.pix_fmt = pix_fmt
                for t in range(a.shape[0]):
                    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(a[t]), format=in_fmt)
                    for packet in stream.encode(frame):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)
        except av.error.FFmpegError as e:
            raise UnsupportedFormatError(f"{path}: FFmpeg could not write with codec {codec_name!r}: {e}") from e
    logger.debug("wrote %s: %d frames %dx%d at %.4g fps (%s)", path, a.shape[0], h, w, fps, codec_name)
    return path


class VideoWriter(ImageWriter):
    """MONAI image writer for videos, registered for :data:`WRITE_SUFFIXES` (.mp4 .avi .mov .mkv .webm .gif .m4v).

    ``SaveImage(output_ext=".mkv")(seg)`` writes a (C, T, H, W) MetaTensor (C in {1, 3}) at the frame rate in its
    metadata (``fps``, else ``1 / time_spacing``, else ``fps`` given here, else 25). Label maps: use .mkv or .avi
    (FFV1, lossless) to read them back exactly; .mp4 is lossy and for viewing.

    Args:
        output_dtype: accepted for MONAI compatibility; frames are written as uint8 (uint16 for labels > 255).
        channel_dim: channel axis of the array given to ``set_data_array`` (0 for channel-first).
        scale: 255 maps a [0, 1] probability map to 0..255; None writes integer labels unchanged.
        fps: frame rate used when the metadata has none.
        codec, lossless, options: see :func:`write_video`.
    """

    def __init__(
        self,
        output_dtype: Any = np.uint8,
        channel_dim: int | None = 0,
        scale: int | None = None,
        fps: float | None = None,
        codec: str | None = None,
        lossless: bool | None = None,
        options: Mapping[str, str] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(output_dtype=output_dtype, channel_dim=channel_dim, scale=scale, **kwargs)
        self.fps = fps
        self.codec, self.lossless, self.options = codec, lossless, options
        self.meta: dict = {}

    def set_data_array(self, data_array, channel_dim: int | None = 0, squeeze_end_dims: bool = True, **kwargs):
        a = data_array.detach().cpu().numpy() if isinstance(data_array, torch.Tensor) else np.asarray(data_array)
        if channel_dim is not None:
            a = np.moveaxis(a, int(channel_dim), -1)
            if a.ndim != 4:
                raise MedstDataError(f"a video needs (C, T, H, W) data, got shape {tuple(data_array.shape)}")
        elif a.ndim != 3:
            raise MedstDataError(f"a video without channels needs (T, H, W) data, got {tuple(data_array.shape)}")
        self.data_obj = a

    def set_metadata(self, meta_dict: Mapping | None = None, **options):
        self.meta = dict(meta_dict or {})

    def _fps(self) -> float:
        m = self.meta
        for value in (m.get("fps"),):
            if value is not None and float(np.asarray(value).reshape(-1)[0]) > 0:
                return float(np.asarray(value).reshape(-1)[0])
        ts = m.get("time_spacing")
        if ts is not None and float(np.asarray(ts).reshape(-1)[0]) > 0:
            return 1.0 / float(np.asarray(ts).reshape(-1)[0])
        if self.fps:
            return float(self.fps)
        logger.warning("no frame rate in the metadata; writing at 25 fps")
        return 25.0

    def write(self, filename, verbose: bool = False, **kwargs):
        super().write(filename, verbose=verbose)
        src = self.meta.get("filename_or_obj")
        write_video(
            self.data_obj, filename, fps=self._fps(), codec=kwargs.get("codec", self.codec),
            lossless=kwargs.get("lossless", self.lossless), options=kwargs.get("options", self.options),
            channel_last=True, scale=self.scale, inputs=[src] if isinstance(src, (str, os.PathLike)) else None,
        )
        if verbose:
            logger.info("wrote %s", filename)


class _RegisteredVideoReader(VideoReader):
    """The :class:`VideoReader` that ``LoadImage()`` creates from MONAI's reader table (also what the name
    ``"VideoReader"`` resolves to): an error on a file that is not a video is raised, so that ``LoadImage`` goes on
    to its other readers."""

    _errors_are_final = False


_REGISTERED: dict[str, Any] = {}


def register_video_io() -> None:
    """Make MONAI's ``LoadImage()`` and ``SaveImage()`` handle videos; called by ``import medst`` (unless the
    environment sets ``MEDST_REGISTER_IO=0``); :func:`unregister_video_io` undoes it.

    The reader is added to :data:`monai.transforms.io.array.SUPPORTED_READERS` (the last entry is tried first by
    ``LoadImage()``; it claims only videos and DICOM cine, by content, so every other file goes to MONAI's own
    readers as before). The writer is registered for each video suffix (:data:`WRITE_SUFFIXES`, for which MONAI has
    no writer) after MONAI's default writers are initialised (registering before that would stop MONAI from
    initialising its NIfTI and PNG writers).
    """
    if _REGISTERED:
        return
    from monai.transforms.io import array as io_array

    if not SUPPORTED_WRITERS:
        _init_monai_writers()
    _REGISTERED["readers"] = {"videoreader": io_array.SUPPORTED_READERS.get("videoreader")}
    _REGISTERED["writers"] = {ext: SUPPORTED_WRITERS.get(ext) for ext in WRITE_SUFFIXES}
    io_array.SUPPORTED_READERS["videoreader"] = _RegisteredVideoReader
    for ext in WRITE_SUFFIXES:
        SUPPORTED_WRITERS[ext] = ()  # the only writer (SaveImage would fall back to others when one raises)
        register_writer(ext, VideoWriter)


def unregister_video_io() -> None:
    """Undo :func:`register_video_io`: MONAI's reader and writer tables as they were before it."""
    if not _REGISTERED:
        return
    from monai.transforms.io import array as io_array

    restore_io_tables(_REGISTERED, io_array.SUPPORTED_READERS, SUPPORTED_WRITERS)
