"""Videos as MONAI images: a reader, a writer and plain functions over PyAV (FFmpeg) and pydicom.

A video loads as a channel-last array ``(T, H, W, C)`` (or ``(T, H, W)`` in grey) whose metadata says so
(``original_channel_dim``), so that MONAI's ``EnsureChannelFirst`` turns it into medst's video layout
``(C, T, H, W)``. Time is the first spatial axis: the affine is ``diag(time_spacing, 1, 1, 1)`` and the metadata
carries ``fps`` (frames per second of the array), ``time_spacing`` (seconds per frame) and ``num_frames``.

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
    MedstDataError,
    UnsupportedFormatError,
    atomic_write_path,
    check_readable_file,
)

__all__ = [
    "VIDEO_SUFFIXES",
    "LOSSLESS_SUFFIXES",
    "VideoReader",
    "VideoWriter",
    "read_video",
    "write_video",
    "video_info",
    "count_frames",
    "is_dicom_cine",
    "register_video_io",
]

logger = logging.getLogger(__name__)

#: suffixes read and written through PyAV
VIDEO_SUFFIXES: tuple[str, ...] = ("mp4", "avi", "mov", "mkv", "webm", "gif", "m4v")
#: suffixes whose default codec is lossless (FFV1); ``gif`` is lossless for grey 8-bit frames only
LOSSLESS_SUFFIXES: tuple[str, ...] = ("mkv", "avi")
_DICOM_SUFFIXES = ("dcm", "dicom")
# (0018,1063) FrameTime and (0018,1065) FrameTimeVector: the Frame Increment Pointer of a cine
_CINE_POINTERS = (0x00181063, 0x00181065)


def _suffix(path: str | os.PathLike) -> str:
    return Path(str(path)).suffix.lower().lstrip(".")


def _channels_arg(channels: str | None, grey: bool | None) -> str:
    if grey is not None:
        return "grey" if grey else "rgb"
    c = (channels or "auto").lower()
    c = {"gray": "grey", "greyscale": "grey", "grayscale": "grey", "color": "rgb", "colour": "rgb"}.get(c, c)
    if c not in ("rgb", "grey", "auto"):
        raise ValueError(f"channels must be 'rgb', 'grey' or 'auto', got {channels!r}")
    return c


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
        (int, or None when the container does not say), ``height``, ``width``, ``codec``, ``pix_fmt``.
    """
    p = check_readable_file(path)
    if _suffix(p) in _DICOM_SUFFIXES:
        ds = _dcmread(p, header_only=True)
        fps = _dicom_fps(ds)
        return {
            "fps": fps, "fps_fraction": None, "num_frames": int(ds.get("NumberOfFrames", 1) or 1),
            "height": int(ds.Rows), "width": int(ds.Columns), "codec": "dicom",
            "pix_fmt": str(ds.get("PhotometricInterpretation", "")),
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
            "duration": float(stream.duration * stream.time_base) if stream.duration and stream.time_base
            else (container.duration / 1e6 if container.duration else None),
            "av_version": av.__version__,
        }


def count_frames(path: str | os.PathLike) -> int:
    """The number of frames of a video or DICOM cine without decoding any.

    Uses the container's frame count when it stores one (mp4, avi, DICOM), else counts the video packets (mkv,
    webm, gif: one packet per frame), which reads the file but decodes nothing.
    """
    info = video_info(path)
    if info["num_frames"]:
        return int(info["num_frames"])
    p = Path(path)
    with _open_container(p) as container:
        stream = _video_stream(container, p)
        return sum(1 for packet in container.demux(stream) if packet.size)


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
    except av.error.FFmpegError as e:
        raise CorruptFileError(f"{path}: cannot open as a video ({e}); the file may be truncated or corrupt") from e


def _video_stream(container, path: Path):
    if not container.streams.video:
        raise CorruptFileError(f"{path}: the file has no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise UnsupportedFormatError(f"{path}: the video codec is not supported by this FFmpeg build")
    return stream


def _gray_format(pix_fmt: str | None) -> str | None:
    """The ndarray format to decode a grey stream to, or None when the stream is in colour."""
    if not pix_fmt:
        return None
    if pix_fmt.startswith(("gray", "ya")):
        return "gray16le" if any(b in pix_fmt for b in ("9", "10", "12", "14", "16")) else "gray"
    return None


def _read_av(path: Path, channels: str, start: int, stop: int | None, stride: int, strict: bool
             ) -> tuple[np.ndarray, dict]:
    av = _import_av()
    with _open_container(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise CorruptFileError(f"{path}: the video stream has no frame rate")
        fps = Fraction(rate)
        tb = stream.time_base
        t0 = stream.start_time or 0
        declared = int(stream.frames) if stream.frames else None
        pix_fmt = stream.codec_context.pix_fmt
        grey_fmt = _gray_format(pix_fmt)
        requested = channels
        if channels == "auto":
            channels = "grey" if grey_fmt else "rgb"
        fmt = (grey_fmt or "gray") if channels == "grey" else "rgb24"

        def index_of(frame) -> int:
            if frame.pts is None or tb is None:
                return -1
            return int(round(float((frame.pts - t0) * tb * fps)))

        def decode(seek: bool) -> list[np.ndarray] | None:
            """Frames start, start + stride, ... before stop; None when a seek overshot (or lost the timestamps)."""
            if seek:
                target = int(t0 + math.floor(start / fps / tb))
                try:
                    container.seek(target, stream=stream, backward=True, any_frame=False)
                except av.error.FFmpegError:  # some containers cannot seek
                    logger.debug("%s: seek failed, decoding from the start", path)
                    return None
            out: list[np.ndarray] = []
            counter = -1  # frame count, used when frames carry no timestamps
            first = True
            for frame in container.decode(stream):
                counter += 1
                idx = index_of(frame)
                if seek and (idx < 0 or (first and idx > start)):
                    return None
                first = False
                idx = counter if idx < 0 else idx
                if idx < start:
                    continue
                if stop is not None and idx >= stop:
                    break
                if (idx - start) % stride == 0:
                    out.append(frame.to_ndarray(format=fmt))
            return out

        try:
            frames = decode(seek=True) if start > 0 and tb is not None else None
            if frames is None:
                if start > 0:
                    container.seek(0, backward=True, any_frame=False)  # back to the beginning of the file
                frames = decode(seek=False)
        except av.error.FFmpegError as e:
            raise CorruptFileError(f"{path}: decoding failed ({e})") from e
    if not frames:
        what = "has zero frames" if start == 0 else f"has no frames in the range start={start}, stop={stop}"
        raise MedstDataError(f"{path}: the video {what}")
    if declared and start == 0 and stop is None and stride == 1 and len(frames) < declared:
        msg = f"{path}: the container declares {declared} frames but only {len(frames)} decoded (truncated?)"
        if strict:
            raise CorruptFileError(msg)
        logger.warning(msg)
    arr = np.stack(frames, 0)
    if requested == "auto" and arr.ndim == 4 and grey_fmt is None and stream.codec_context.name == "gif":
        # the GIF decoder always outputs colour (bgra); a grey GIF (as medst writes label maps) stays grey
        if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]):
            arr = arr[..., 0]
    meta = {
        "fps_source": float(fps),
        "source_num_frames": declared,
        "codec": stream.codec_context.name,
        "pix_fmt": pix_fmt,
    }
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
    strict: bool = True,
) -> tuple[np.ndarray, dict]:
    """Decode a video file or a DICOM cine into a channel-last array.

    Only frames ``start, start + stride, ...`` before ``stop`` are decoded (at most ``num_frames`` of them); a
    video seeks to the key frame before ``start`` instead of decoding from the beginning.

    Args:
        path: a video (.mp4 .avi .mov .mkv .webm .gif) or a multi-frame DICOM (.dcm).
        channels: ``"rgb"`` (3 channels), ``"grey"`` (1 channel) or ``"auto"`` (grey streams stay grey).
        start: first frame index (0-based).
        stop: frame index to stop before (exclusive); ``None``: the end.
        num_frames: the number of frames to return (instead of ``stop``).
        stride: keep every ``stride``-th frame.
        grey: shortcut for ``channels``: True -> "grey", False -> "rgb".
        strict: raise when fewer frames decode than the container declares (a truncated file).

    Returns:
        ``(array, meta)``: ``array`` is (T, H, W, 3) for RGB or (T, H, W) for grey, uint8 (uint16 for 16-bit grey
        video); ``meta`` has ``fps`` (of the returned frames, i.e. divided by ``stride``), ``time_spacing``,
        ``num_frames``, ``start_frame``, ``frame_stride``, ``fps_source`` and the codec.

    Raises:
        FileNotFoundError: missing file. CorruptFileError: truncated or undecodable file.
        MedstDataError: zero frames (in the range). UnsupportedFormatError: unknown suffix.
    """
    p = check_readable_file(path)
    ch = _channels_arg(channels, grey)
    start, stop = _frame_range(int(start), stop, num_frames, int(stride), None)
    sfx = _suffix(p)
    if sfx in _DICOM_SUFFIXES:
        arr, meta = _read_dicom(p, ch, start, stop, stride)
    elif sfx in VIDEO_SUFFIXES:
        arr, meta = _read_av(p, ch, start, stop, stride, strict)
    else:
        raise UnsupportedFormatError(
            f"{p}: unsupported video suffix {sfx!r}; use one of {VIDEO_SUFFIXES + _DICOM_SUFFIXES}"
        )
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    fps_src = meta["fps_source"]
    fps = fps_src / stride if fps_src and not math.isnan(fps_src) else float("nan")
    meta.update(
        fps=float(fps),
        time_spacing=float(1.0 / fps) if fps and not math.isnan(fps) else 1.0,
        num_frames=int(arr.shape[0]),
        start_frame=int(start),
        frame_stride=int(stride),
    )
    if math.isnan(fps):
        logger.warning("%s: no frame rate in the file; time_spacing set to 1", p)
    # no None values: MONAI's list_data_collate cannot collate them (e.g. a frame count that mkv does not store)
    meta = {k: v for k, v in meta.items() if v is not None}
    return arr, meta


class VideoReader(ImageReader):
    """MONAI image reader for videos (PyAV) and multi-frame DICOM cine (pydicom).

    ``LoadImage()`` picks it by suffix once medst is imported (.mp4 .avi .mov .mkv .webm .gif .m4v, and .dcm files
    that are multi-frame cine); a bundle config can also name it: ``"reader": "medst.data.VideoReader"``.
    The array is channel-last, (T, H, W, C) or (T, H, W) in grey, and ``EnsureChannelFirst`` makes it
    (C, T, H, W).

    Args:
        channels: ``"rgb"``, ``"grey"`` or ``"auto"`` (grey streams stay grey, colour ones are RGB).
        grey: shortcut for ``channels``.
        start, stop, num_frames, stride: the frames to decode (see :func:`read_video`).
        dicom: ``"cine"`` (default): claim .dcm files only when they are multi-frame cine; ``True``: claim every
            .dcm file; ``False``: never claim .dcm (it still reads one when named explicitly).
        strict: raise on a truncated video (fewer frames than declared).
        dtype: data type of the array (default: the decoded uint8/uint16).

    Example::

        img = LoadImage(ensure_channel_first=True)(sample_file("video_carphone"))  # (3, 120, 144, 176)
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
        strict: bool = True,
        dtype: Any = None,
        **kwargs,
    ) -> None:
        super().__init__()
        self.channels = _channels_arg(channels, grey)
        _frame_range(int(start), stop, num_frames, int(stride), None)  # validate early
        self.start, self.stop, self.num_frames, self.stride = int(start), stop, num_frames, int(stride)
        self.dicom = dicom
        self.strict = strict
        self.dtype = dtype
        self.kwargs = kwargs

    def verify_suffix(self, filename: Sequence[os.PathLike | str] | os.PathLike | str) -> bool:
        names = [filename] if isinstance(filename, (str, os.PathLike)) else list(filename)
        if not names:
            return False
        for name in names:
            sfx = _suffix(name)
            if sfx in VIDEO_SUFFIXES:
                continue
            if sfx in _DICOM_SUFFIXES and self.dicom:
                if self.dicom == "cine" and not is_dicom_cine(name):
                    return False
                continue
            return False
        return True

    def read(self, data: Sequence[os.PathLike | str] | os.PathLike | str, **kwargs) -> list[tuple[np.ndarray, dict]]:
        names = [data] if isinstance(data, (str, os.PathLike)) else list(data)
        opts = {
            "channels": self.channels, "start": self.start, "stop": self.stop, "num_frames": self.num_frames,
            "stride": self.stride, "strict": self.strict,
        }
        opts.update(kwargs)
        return [(*read_video(n, **opts), str(n)) for n in names]

    def get_data(self, img) -> tuple[np.ndarray, dict]:
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
        ts = float(meta["time_spacing"])
        affine = np.diag([ts, 1.0, 1.0, 1.0])
        fps_src = float(meta.get("fps_source") or float("nan"))
        if meta.get("start_frame") and fps_src > 0:  # t = 0 at the first frame of the file
            affine[0, 3] = meta["start_frame"] / fps_src
        meta[MetaKeys.AFFINE] = affine
        meta[MetaKeys.ORIGINAL_AFFINE] = affine.copy()
        meta[MetaKeys.SPATIAL_SHAPE] = np.asarray(data.shape[:3])
        meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = -1 if data.ndim == 4 else float("nan")
        meta[MetaKeys.SPACE] = SpaceKeys.RAS
        if self.dtype is not None:
            data = data.astype(self.dtype)
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
    """MONAI image writer for videos, registered for .mp4 .avi .mov .mkv .webm .gif .m4v.

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


_REGISTERED = False


def register_video_io() -> None:
    """Make MONAI's ``LoadImage()`` and ``SaveImage()`` handle videos; called once by ``import medst.data``.

    The reader goes to the end of :data:`monai.transforms.io.array.SUPPORTED_READERS` (tried first by suffix, and
    only for video suffixes and DICOM cine, so .nii/.dcm volumes still go to MONAI's own readers). The writer is
    registered for each video suffix after MONAI's default writers are initialised (registering before that would
    stop MONAI from initialising its NIfTI and PNG writers).
    """
    global _REGISTERED
    if _REGISTERED:
        return
    from monai.transforms.io import array as io_array

    io_array.SUPPORTED_READERS["videoreader"] = VideoReader
    if not SUPPORTED_WRITERS:
        _init_monai_writers()
    for ext in VIDEO_SUFFIXES:
        SUPPORTED_WRITERS[ext] = ()  # the only writer (SaveImage would fall back to others when one raises)
        register_writer(ext, VideoWriter)
    _REGISTERED = True

