"""Inputs of any length, chunk by chunk: a dataset for MONAI's engines, and writers that append.

A video (or a long 4D series) is segmented file to file in flat memory by three pieces that fit MONAI's engines,
so that a bundle's ``inference.json`` stays the way to run it:

- :class:`ChunkDataset` yields each input's frames a chunk at a time, decoded lazily (PyAV for videos, nibabel's
  array proxy for 4D NIfTI), channel-first and uint8 for 8-bit video, each chunk a ``MetaTensor`` whose metadata
  says where it lies (``chunk_index``, ``chunk_start``, ``last_chunk``) with an affine shifted to its first frame.
  A reader thread decodes and preprocesses the next chunks while the network runs on this one.
- :class:`medst.inferers.StreamingInferer` sees the chunk position and carries every tile's recurrent state from
  one chunk of a source to the next, so the labels equal those of streaming the whole clip at once.
- :class:`ChunkWriter` (and the dictionary transforms :class:`medst.transforms.SaveVideoChunksd`,
  :class:`medst.transforms.SaveNiftiChunksd`) append each chunk to an open output (encoded on a writer thread
  behind the compute) and move it into place at the last chunk, so no half-written output ever carries the final
  name.

Why this shape: MONAI's ``SupervisedEvaluator`` runs one iteration per item and keeps nothing between them, so the
state has to live where the engine lets it live: the inferer (an object the config builds once). The dataset knows
the file, the inferer the state, the writer the open file; each is usable on its own.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import apply_transform
from monai.utils import MetaKeys, SpaceKeys
from torch.utils.data import IterableDataset, get_worker_info

from .utils import CorruptFileError, MedstDataError, check_readable_file

__all__ = ["ChunkDataset", "ChunkWriter", "iter_chunks", "CHUNK_KEYS"]

logger = logging.getLogger(__name__)

#: metadata keys that place a chunk in its sequence
CHUNK_KEYS = ("chunk_index", "chunk_start", "last_chunk")
_NIFTI_SUFFIXES = (".nii", ".nii.gz")
_DONE = object()


def _is_nifti(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(_NIFTI_SUFFIXES)


# ---------------------------------------------------------------------------------------------------- sources
def _frames_per_chunk(chunk_frames: int, max_voxels: int | None, frame_voxels: int) -> int:
    """``chunk_frames``, fewer for large frames so that a chunk holds at most ``max_voxels`` values."""
    if not max_voxels:
        return chunk_frames
    return max(1, min(chunk_frames, int(max_voxels) // max(1, frame_voxels)))


def _video_blocks(path: Path, chunk_frames: int, channels: str, on_error: str,
                  max_voxels: int | None = None) -> Iterator[tuple[np.ndarray, dict]]:
    """(C, t, H, W) uint8 blocks of a video, decoded lazily, and the stream's metadata (on every block).

    The same honesty as :func:`medst.data.read_video`: a decoding error or a corrupt packet, or a clean end clearly
    short of the count or duration the container declares, is a truncated file (raised, or with
    ``on_error="keep"`` logged and marked ``decode_incomplete``); the last block is held back until that is known.
    """
    from .video import (
        _AVFMT_NOTIMESTAMPS,
        _HEADER_DURATION_FORMATS,
        _HINT_TOLERANCE_FRACTION,
        _HINT_TOLERANCE_FRAMES,
        _FrameConverter,
        _gray_format,
        _import_av,
        _open_container,
        _set_decode_threads,
        _video_stream,
    )

    av = _import_av()
    with _open_container(path) as container:
        stream = _video_stream(container, path)
        _set_decode_threads(stream)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise CorruptFileError(f"{path}: the video stream has no frame rate")
        fps = float(rate)
        tb, t0 = stream.time_base, stream.start_time or 0
        use_pts = not (container.format.flags & _AVFMT_NOTIMESTAMPS)
        declared = int(stream.frames) if stream.frames else None
        header_seconds = None
        if stream.duration and tb:
            header_seconds = float(stream.duration * tb)
        elif container.duration and len(container.streams) == 1:
            header_seconds = container.duration / 1e6
        grey_fmt = _gray_format(stream.codec_context.pix_fmt)
        mode = ("grey" if grey_fmt else "rgb") if channels == "auto" else channels
        fmt = (grey_fmt or "gray") if mode == "grey" else "rgb24"
        info: dict[str, Any] = {"fps": fps, "time_spacing": 1.0 / fps, "fps_source": fps,
                                "codec": stream.codec_context.name, "source_num_frames": declared}
        frames: list[np.ndarray] = []
        decoded, empty, last_time, error = 0, 0, None, None
        convert = _FrameConverter(fmt)

        def take(frame) -> np.ndarray | None:
            nonlocal decoded, last_time
            last_time = (float((frame.pts - t0) * tb) if use_pts and frame.pts is not None and tb is not None
                         else decoded / fps)
            decoded += 1
            a = convert(frame)
            return a[None] if a.ndim == 2 else np.moveaxis(a, -1, 0)

        sized = False

        def full() -> bool:
            nonlocal chunk_frames, sized
            if not sized and frames:  # the first frame tells the frame size
                chunk_frames, sized = _frames_per_chunk(chunk_frames, max_voxels, frames[0].size), True
            return len(frames) >= chunk_frames

        eof = False
        try:
            for packet in container.demux(stream):
                if packet.size and packet.is_corrupt:
                    frames.extend(take(f) for f in stream.decode(None))
                    error = "a corrupt or incomplete packet (the file may be truncated)"
                    break
                if packet.size == 0 and packet.pts is not None:
                    empty += 1
                for frame in packet.decode():
                    frames.append(take(frame))
                while full():
                    yield np.stack(frames[:chunk_frames], 1), info
                    frames = frames[chunk_frames:]
            else:
                eof = True
        except av.error.FFmpegError as e:
            error = f"{type(e).__name__}: {e}"
        if error is None and eof:
            tolerance = max(_HINT_TOLERANCE_FRAMES, math.ceil(_HINT_TOLERANCE_FRACTION * (declared or decoded)))
            missing = None
            if declared:
                missing = declared - decoded - empty
            elif header_seconds and last_time is not None and any(
                f in container.format.name.split(",") for f in _HEADER_DURATION_FORMATS
            ):
                missing = int(math.floor((header_seconds - last_time) * fps - 1.0 + 1e-6))
            if missing is not None and missing > tolerance:
                what = f"declares {declared} frames" if declared else f"declares {header_seconds:.3f} s"
                error = f"the container {what} but the stream ended after {decoded} frames (truncated?)"
        if error is not None:
            msg = f"{path}: decoding stopped at frame {decoded}: {error}"
            if on_error != "keep" or decoded == 0:
                raise CorruptFileError(msg + ("; on_error='keep' returns the frames that decoded" if decoded else ""))
            logger.warning("%s; on_error='keep': keeping the %d frames that decoded", msg, decoded)
            info["decode_incomplete"] = True
            info["decode_error"] = msg
        if decoded == 0:
            raise MedstDataError(f"{path}: the video has zero frames")
        info["frames_decoded"] = decoded
        full()
        while frames:
            yield np.stack(frames[:chunk_frames], 1), info
            frames = frames[chunk_frames:]


def _nifti_blocks(path: Path, chunk_frames: int, max_voxels: int | None = None) -> Iterator[tuple[np.ndarray, dict]]:
    """(1, t, X, Y, Z) blocks of a 4D NIfTI, read lazily along its time axis (the last one)."""
    import nibabel as nib

    from .nifti import time_spacing_seconds

    img = nib.load(str(path))
    if len(img.shape) != 4:
        raise MedstDataError(f"{path}: a chunked series needs a 4D NIfTI (X, Y, Z, T), got shape {img.shape}")
    hdr = img.header
    t_unit = hdr.get_xyzt_units()[1] if hasattr(hdr, "get_xyzt_units") else None
    ts = time_spacing_seconds(float(hdr["pixdim"][4]), t_unit)
    info = {"time_spacing": ts, "fps": 1.0 / ts if ts > 0 else float("nan"), "affine_spatial": img.affine.copy()}
    n = img.shape[3]
    chunk_frames = _frames_per_chunk(chunk_frames, max_voxels, int(np.prod(img.shape[:3])))
    for t0 in range(0, n, chunk_frames):
        block = np.asarray(img.dataobj[..., t0 : t0 + chunk_frames])  # only these frames are read
        yield np.moveaxis(block, -1, 0)[None], info
    info["frames_decoded"] = n


def iter_chunks(
    path: str | os.PathLike, chunk_frames: int = 64, channels: str = "auto", on_error: str = "raise",
    max_chunk_voxels: int | None = None,
) -> Iterator[MetaTensor]:
    """The chunks of a video or 4D NIfTI as channel-first ``MetaTensor`` s with their position in the metadata.

    A video gives (C, t, H, W) uint8 (C = 1 in grey, 3 in colour) with affine ``diag(time_spacing, 1, 1, 1)``
    shifted to the chunk's first frame; a 4D NIfTI (X, Y, Z, T) gives (1, t, X, Y, Z) in its own dtype with its
    spatial affine. ``last_chunk`` is known because the next chunk is decoded before this one is handed out.

    Args:
        path: a video FFmpeg decodes, or a .nii/.nii.gz 4D series.
        chunk_frames: frames per chunk.
        max_chunk_voxels: fewer frames per chunk when a chunk would hold more values than this (large frames);
            ``None``: always ``chunk_frames``.
        channels: ``"auto"``, ``"grey"`` or ``"rgb"`` (videos).
        on_error: ``"raise"`` (default): a stream that breaks part-way raises, naming the file and the frame;
            ``"keep"``: the frames that decoded are used, with a warning and ``decode_incomplete`` in the metadata
            of the last chunk.
    """
    if int(chunk_frames) < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}.")
    if on_error not in ("raise", "keep"):
        raise ValueError(f"on_error must be 'raise' or 'keep', got {on_error!r}.")
    if channels not in ("auto", "grey", "rgb"):
        raise ValueError(f"channels must be 'auto', 'grey' or 'rgb', got {channels!r}.")
    path = Path(check_readable_file(path))
    nifti = _is_nifti(path)
    if nifti:
        blocks = _nifti_blocks(path, int(chunk_frames), max_chunk_voxels)
    else:
        blocks = _video_blocks(path, int(chunk_frames), channels, on_error, max_chunk_voxels)
    pending: tuple[np.ndarray, dict] | None = None
    index, start = 0, 0

    def make(arr: np.ndarray, info: dict, last: bool) -> MetaTensor:
        ts = float(info["time_spacing"])
        if nifti:
            affine = info["affine_spatial"]
        else:
            affine = np.diag([ts, 1.0, 1.0, 1.0])
            affine[0, 3] = start * ts
        meta = {
            "filename_or_obj": str(path),
            MetaKeys.AFFINE: torch.as_tensor(affine, dtype=torch.float64),
            MetaKeys.ORIGINAL_AFFINE: np.array(affine),
            MetaKeys.SPATIAL_SHAPE: np.asarray(arr.shape[1:]),
            MetaKeys.ORIGINAL_CHANNEL_DIM: 0,
            MetaKeys.SPACE: SpaceKeys.RAS,
            "chunk_index": index,
            "chunk_start": start,
            "last_chunk": last,
            **{k: v for k, v in info.items() if k != "affine_spatial" and v is not None},
        }
        if last and "frames_decoded" not in meta:
            meta["frames_decoded"] = start + arr.shape[1]
        return MetaTensor(torch.from_numpy(np.ascontiguousarray(arr)), meta=meta)

    for block in blocks:
        if pending is not None:
            yield make(*pending, last=False)
            index, start = index + 1, start + pending[0].shape[1]
        pending = block
    if pending is not None:
        yield make(*pending, last=True)


# ---------------------------------------------------------------------------------------------------- dataset
class ChunkDataset(IterableDataset):
    """Each input's frames, chunk by chunk: the dataset of a MONAI engine for videos and 4D series of any length.

    Every item of ``data`` (a dict with ``key`` naming a file, or a path) becomes a run of dicts, one per chunk of
    ``chunk_frames`` frames: the item's other fields unchanged and ``key`` the chunk (see :func:`iter_chunks`),
    passed through ``transform``. A reader thread keeps ``prefetch`` chunks decoded and transformed ahead of the
    consumer, so decoding overlaps the network. Give it to a ``DataLoader`` with ``batch_size=1`` and
    ``num_workers=0`` (the chunks of a file must stay in order); ``len`` is unknown, which MONAI 1.6's engines accept.

    ``max_chunk_voxels`` (16.8 M values) caps a chunk for large frames: 256 frames of 64x64, 54 of 640x480 RGB, so
    that memory depends on neither the length nor, beyond that cap, the frame size.

    ``series_stats=True`` reads each series once first to put its intensity mean and standard deviation in every
    chunk's metadata (``series_mean``, ``series_std``), so that :class:`medst.transforms.NormalizeSeriesIntensityd`
    normalises a chunk exactly as ``NormalizeIntensityd`` normalises the whole series.

    Bundle config::

        "dataset": {"_target_": "medst.data.ChunkDataset", "data": "$[{'image': i} for i in @datalist]",
                    "transform": "@preprocessing", "chunk_frames": 256}
    """

    def __init__(
        self,
        data: Sequence[Mapping | str | os.PathLike],
        transform: Callable | None = None,
        key: str = "image",
        chunk_frames: int = 64,
        channels: str = "auto",
        on_error: str = "raise",
        prefetch: int = 2,
        series_stats: bool = False,
        max_chunk_voxels: int | None = 2**24,
    ) -> None:
        super().__init__()
        self.data = list(data)
        self.transform = transform
        self.key = key
        self.chunk_frames = int(chunk_frames)
        if self.chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}.")
        self.channels, self.on_error = channels, on_error
        self.prefetch = max(0, int(prefetch))
        self.series_stats = series_stats
        self.max_chunk_voxels = max_chunk_voxels

    def _items(self) -> list[dict]:
        items = [dict(d) if isinstance(d, Mapping) else {self.key: d} for d in self.data]
        worker = get_worker_info()
        if worker is not None:  # several workers: each takes whole files, so every file's chunks stay in order
            items = items[worker.id :: worker.num_workers]
        return items

    def _stats(self, path: Any) -> dict[str, float]:
        n, s, ss = 0, 0.0, 0.0
        for chunk in iter_chunks(path, self.chunk_frames, self.channels, self.on_error, self.max_chunk_voxels):
            a = chunk.as_tensor().double()
            n, s, ss = n + a.numel(), s + float(a.sum()), ss + float((a * a).sum())
        mean = s / n
        return {"series_mean": mean, "series_std": math.sqrt(max(ss / n - mean * mean, 0.0))}

    def _generate(self) -> Iterator[dict]:
        for item in self._items():
            if self.key not in item:
                raise MedstDataError(f"ChunkDataset: the item {item} has no {self.key!r} entry")
            path = item[self.key]
            stats = self._stats(path) if self.series_stats else {}
            for chunk in iter_chunks(path, self.chunk_frames, self.channels, self.on_error, self.max_chunk_voxels):
                chunk.meta.update(stats)
                d = dict(item)
                d[self.key] = chunk
                yield apply_transform(self.transform, d) if self.transform is not None else d

    def __iter__(self) -> Iterator[dict]:
        if self.prefetch == 0:
            yield from self._generate()
            return
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def produce() -> None:
            try:
                for d in self._generate():
                    while not stop.is_set():
                        try:
                            q.put(d, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                q.put(_DONE)
            except BaseException as e:  # handed to the consumer, raised there
                q.put(e)

        thread = threading.Thread(target=produce, name="medst-chunk-reader", daemon=True)
        thread.start()
        try:
            while True:
                d = q.get()
                if d is _DONE:
                    return
                if isinstance(d, BaseException):
                    raise d
                yield d
        finally:
            stop.set()
            while thread.is_alive():  # unblock a producer waiting on a full queue
                try:
                    q.get_nowait()
                except queue.Empty:
                    thread.join(0.05)


# ---------------------------------------------------------------------------------------------------- writers
def _first(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.reshape(-1)[0].item() if value.numel() else None
    if isinstance(value, np.ndarray):
        return value.reshape(-1)[0].item() if value.size else None
    if isinstance(value, (list, tuple)):
        return _first(value[0]) if value else None
    return value


class _VideoSink:
    """An open video encoder that frames are appended to (PyAV), in a temporary file until closed."""

    def __init__(self, path: Path, final: Path, fps: float, codec: str | None, options: Mapping[str, str] | None):
        from fractions import Fraction

        from .video import _CODECS, _import_av, _suffix

        self.av = _import_av()
        self.format = _container_format(final)
        sfx = _suffix(final)
        if sfx not in _CODECS:
            raise MedstDataError(f"{path}: unsupported video suffix {sfx!r}; use one of {tuple(_CODECS)}")
        name, opts = _CODECS[sfx]
        if codec is not None:
            name, opts = codec, {}
        self.codec, self.opts = name, {**opts, **{str(k): str(v) for k, v in (options or {}).items()}}
        self.path = path
        self.rate = Fraction(fps).limit_denominator(1001 * 1000)
        self.container = self.stream = None
        self.in_fmt = None

    def _open(self, frame: np.ndarray) -> None:
        grey = frame.ndim == 2
        h, w = frame.shape[:2]
        if self.codec == "ffv1":
            pix_fmt, self.in_fmt = ("gray16le", "gray16le") if frame.dtype == np.uint16 else (
                ("gray", "gray") if grey else ("bgr0", "rgb24"))
        elif self.codec == "gif":
            pix_fmt, self.in_fmt = ("gray", "gray") if grey else ("rgb8", "rgb24")
        else:
            pix_fmt = "yuv420p" if (h % 2 == 0 and w % 2 == 0) else "yuv444p"
            self.in_fmt = "gray" if grey else "rgb24"
        self.container = self.av.open(str(self.path), mode="w", format=self.format)
        self.stream = self.container.add_stream(self.codec, rate=self.rate, options=self.opts)
        self.stream.width, self.stream.height = w, h
        self.stream.pix_fmt = pix_fmt

    def prepare(self, frames: np.ndarray) -> None:
        if self.container is None:
            self._open(frames[0])

    def append(self, frames: np.ndarray) -> None:
        """(t, H, W) or (t, H, W, 3) uint8/uint16 frames."""
        self.prepare(frames)
        for f in frames:
            vf = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format=self.in_fmt)
            for packet in self.stream.encode(vf):
                self.container.mux(packet)

    def close(self) -> None:
        if self.container is None:
            return
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()

    def abort(self) -> None:
        try:
            if self.container is not None:
                self.container.close()
        except Exception:  # noqa: BLE001 - already failing; the temporary is removed next
            pass


def _container_format(path: Path) -> str | None:
    """FFmpeg's muxer for a final suffix (the temporary file's suffix does not name it)."""
    name = path.name.lower()
    for sfx, fmt in ((".mkv", "matroska"), (".avi", "avi"), (".mp4", "mp4"), (".m4v", "mp4"), (".mov", "mov"),
                     (".webm", "webm"), (".gif", "gif")):
        if name.endswith(sfx):
            return fmt
    return None


class _NiftiSink:
    """Frames appended to a raw file along a 4D NIfTI's last axis, turned into the NIfTI at close."""

    def __init__(self, path: Path, affine: np.ndarray, time_spacing: float, dtype: Any):
        self.path, self.affine, self.ts, self.dtype = path, affine, time_spacing, np.dtype(dtype)
        self.raw = path.with_name(path.name + ".raw")
        self.fh = open(self.raw, "wb")  # noqa: SIM115 - closed in close()/abort()
        self.shape: tuple[int, ...] | None = None
        self.frames = 0

    def append(self, frames: np.ndarray) -> None:
        """(t, X, Y, Z) frames; stored as Fortran-ordered (X, Y, Z, T), so appending along T is contiguous."""
        if self.shape is None:
            self.shape = tuple(frames.shape[1:])
        elif tuple(frames.shape[1:]) != self.shape:
            raise MedstDataError(f"{self.path}: a chunk of shape {frames.shape[1:]} after chunks of {self.shape}")
        for f in frames:
            self.fh.write(np.asfortranarray(f.astype(self.dtype, copy=False)).tobytes(order="F"))
        self.frames += len(frames)

    def close(self) -> None:
        import nibabel as nib

        self.fh.close()
        try:
            data = np.memmap(self.raw, dtype=self.dtype, mode="r", shape=(*self.shape, self.frames), order="F")
            img = nib.Nifti1Image(data, self.affine)
            img.header.set_xyzt_units("mm", "sec")
            img.header["pixdim"][4] = self.ts
            img.header.set_data_dtype(self.dtype)
            nib.save(img, str(self.path))
            del data
        finally:
            self.raw.unlink(missing_ok=True)

    def abort(self) -> None:
        self.fh.close()
        self.raw.unlink(missing_ok=True)


class ChunkWriter:
    """Appends the chunks of each source to one output file, moved into place when the last chunk is written.

    ``writer(chunk)`` takes a channel-first chunk ``MetaTensor`` (as :class:`ChunkDataset` yields, after the
    network and the postprocessing): ``kind="video"``: (C, t, H, W) with C in {1, 3}, written to
    ``<output_dir>/<name>_<postfix><ext>`` at the source's frame rate (integer labels unchanged, floats in [0, 1]
    scaled to 0..255); ``kind="nifti"``: (1, t, X, Y, Z), written as a 4D NIfTI (X, Y, Z, T) with the time spacing.
    Until the last chunk the output is a hidden ``.medst-tmp-<pid>-<name>`` file; a run that fails or is stopped
    leaves no file under the final name. Encoding runs on a writer thread behind the compute (``threaded=True``).
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        output_postfix: str = "seg",
        output_ext: str = ".mkv",
        kind: str | None = None,
        scale: int | None = None,
        codec: str | None = None,
        options: Mapping[str, str] | None = None,
        output_dtype: Any = np.uint8,
        threaded: bool = True,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.output_postfix, self.output_ext = output_postfix, output_ext
        self.kind = kind or ("nifti" if output_ext.lower() in _NIFTI_SUFFIXES else "video")
        if self.kind not in ("video", "nifti"):
            raise ValueError(f"kind must be 'video' or 'nifti', got {kind!r}.")
        self.scale, self.codec, self.options, self.output_dtype = scale, codec, options, output_dtype
        self.threaded = threaded
        self._open: dict[str, tuple[Any, Path, Path, Any]] = {}

    def output_path(self, source: str | os.PathLike) -> Path:
        """The final output file for an input file."""
        name = Path(str(source)).name
        for sfx in sorted({*_NIFTI_SUFFIXES, Path(name).suffix}, key=len, reverse=True):
            if sfx and name.lower().endswith(sfx):
                name = name[: -len(sfx)]
                break
        postfix = f"_{self.output_postfix}" if self.output_postfix else ""
        return self.output_dir / f"{name}{postfix}{self.output_ext}"

    def _frames(self, chunk: Any) -> np.ndarray:
        a = chunk.detach().cpu().numpy() if isinstance(chunk, torch.Tensor) else np.asarray(chunk)
        if a.ndim < 3:
            raise MedstDataError(f"a chunk needs (C, t, ...) data, got shape {a.shape}")
        if self.kind == "nifti":
            if a.shape[0] != 1:
                raise MedstDataError(f"a NIfTI chunk needs one channel (1, t, X, Y, Z), got shape {a.shape}")
            return a[0]
        if a.shape[0] not in (1, 3) or a.ndim != 4:
            raise MedstDataError(f"a video chunk needs (1 or 3, t, H, W) data, got shape {a.shape}")
        a = a[0] if a.shape[0] == 1 else np.moveaxis(a, 0, -1)
        if np.issubdtype(a.dtype, np.floating):
            if self.scale or (a.size and float(a.max()) <= 1.0 and float(a.min()) >= 0.0):
                a = np.clip(np.rint(a * (self.scale or 255)), 0, self.scale or 255)
            a = a.astype(np.uint16 if (self.scale or 255) > 255 else np.uint8)
        elif a.dtype != np.uint8:
            a = a.astype(np.uint16 if a.size and int(a.max()) > 255 else np.uint8)
        return a

    def _start(self, source: str, meta: Mapping) -> tuple[Any, Path, Path, Any]:
        final = self.output_path(source)
        if final.resolve() == Path(source).resolve():
            raise MedstDataError(f"{final}: refusing to overwrite the input")
        final.parent.mkdir(parents=True, exist_ok=True)
        part = final.with_name(f".medst-tmp-{os.getpid()}-{final.name}")
        if self.kind == "nifti":
            affine = np.asarray(meta.get(MetaKeys.AFFINE, np.eye(4)), dtype=np.float64).reshape(-1, 4, 4)[0]
            sink: Any = _NiftiSink(part, affine, float(_first(meta.get("time_spacing", 1.0)) or 1.0),
                                   self.output_dtype)
        else:
            fps = _first(meta.get("fps")) or (1.0 / float(_first(meta.get("time_spacing", 0.04)) or 0.04))
            sink = _VideoSink(part, final, float(fps), self.codec, self.options)
        worker = _Worker(sink) if self.threaded else None
        return sink, final, part, worker

    def __call__(self, chunk: Any, meta: Mapping | None = None) -> Path | None:
        """Append ``chunk``; returns the output path once its last chunk is written, else ``None``."""
        meta = dict(meta if meta is not None else getattr(chunk, "meta", {}))
        missing = [k for k in ("chunk_index", "last_chunk") if k not in meta]
        if missing:
            raise MedstDataError(f"ChunkWriter: the chunk's metadata has no {missing} (use medst.data.ChunkDataset)")
        source = str(_first(meta.get("filename_or_obj", "")))
        index, last = int(_first(meta["chunk_index"])), bool(_first(meta["last_chunk"]))
        if index == 0:
            if source in self._open:
                self._abort(source)
            self._open[source] = self._start(source, meta)
        elif source not in self._open:
            raise MedstDataError(f"{source}: chunk {index} arrived before chunk 0")
        sink, final, part, worker = self._open[source]
        frames = self._frames(chunk)
        try:
            if index == 0 and hasattr(sink, "prepare"):
                sink.prepare(frames)  # open the file here, so that a failure to create it is raised at once
            if worker is not None:
                worker.put(frames)
            else:
                sink.append(frames)
            if not last:
                return None
            if worker is not None:
                worker.finish()
            sink.close()
        except BaseException:
            self._abort(source)
            raise
        os.replace(part, final)
        del self._open[source]
        logger.info("wrote %s", final)
        return final

    def _abort(self, source: str) -> None:
        sink, _, part, worker = self._open.pop(source)
        if worker is not None:
            worker.stop()
        sink.abort()
        Path(part).unlink(missing_ok=True)

    def close(self) -> None:
        """Abandon the outputs whose last chunk never came (their temporary files are removed)."""
        for source in list(self._open):
            logger.warning("%s: its last chunk never arrived; no output written", source)
            self._abort(source)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


class _Worker:
    """A thread that appends frames to a sink in order, so that encoding overlaps the compute."""

    def __init__(self, sink: Any, depth: int = 4) -> None:
        self.sink = sink
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="medst-chunk-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.q.get()
            if item is _DONE:
                return
            if self.error is None:
                try:
                    self.sink.append(item)
                except BaseException as e:  # noqa: BLE001 - reported to the caller at the next put/finish
                    self.error = e

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def put(self, frames: np.ndarray) -> None:
        self._check()
        self.q.put(frames)

    def finish(self) -> None:
        self.q.put(_DONE)
        self.thread.join()
        self._check()

    def stop(self) -> None:
        self.error = self.error or RuntimeError("stopped")
        try:
            self.q.put_nowait(_DONE)
        except queue.Full:
            pass
        self.thread.join(5)
