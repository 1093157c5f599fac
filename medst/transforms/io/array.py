"""Load a clip of a long video: only the frames of the clip are decoded (training on clips of long videos)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms import EnsureChannelFirst, Randomizable, Transform
from monai.utils import ImageMetaKey

from medst.data.utils import MedstDataError
from medst.data.video import VideoReader, count_frames

__all__ = ["LoadVideoClip", "load_video_clip"]


def load_video_clip(
    path: str | os.PathLike, start: int, num_frames: int, stride: int = 1, channels: str = "auto",
    dtype: Any = np.float32, ensure_channel_first: bool = True,
) -> torch.Tensor:
    """Frames ``start, start + stride, ...`` (``num_frames`` of them) of a video as a MetaTensor (C, T, H, W).

    The metadata is that of ``LoadImage(reader=VideoReader(...), ensure_channel_first=True)``: ``fps`` (divided by
    ``stride``), ``time_spacing``, ``num_frames``, ``start_frame``, an affine whose time origin is the clip's start.
    """
    reader = VideoReader(channels=channels, start=start, num_frames=num_frames, stride=stride)
    arr, meta = reader.get_data(reader.read(path))
    meta[ImageMetaKey.FILENAME_OR_OBJ] = str(path)
    if dtype is not None:
        arr = arr.astype(dtype)
    img = MetaTensor(torch.from_numpy(np.ascontiguousarray(arr)), meta=meta)
    if ensure_channel_first:
        img = EnsureChannelFirst()(img)
    return img if get_track_meta() else img.as_tensor()


class LoadVideoClip(Randomizable, Transform):
    """Load a (random) clip of ``num_frames`` frames of a video file, decoding only that clip.

    The number of frames comes from the container (or from counting packets), never from decoding; the start
    is drawn uniformly (``random_start``) or the clip is centred. A video shorter than the clip raises, unless
    ``allow_short`` (then all its frames are returned; pad with :class:`~medst.transforms.TemporalPad`).

    Args:
        num_frames: clip length.
        stride: keep every ``stride``-th frame (the clip spans ``(num_frames - 1) * stride + 1`` source frames).
        random_start: draw the start; False centres the clip.
        channels: "rgb", "grey" or "auto".
        dtype: array type (default float32, as ``LoadImage``).
        allow_short: return a shorter clip instead of raising.

    Returns:
        MetaTensor (C, T, H, W).
    """

    def __init__(self, num_frames: int, stride: int = 1, random_start: bool = True, channels: str = "auto",
                 dtype: Any = np.float32, allow_short: bool = False) -> None:
        if num_frames < 1 or stride < 1:
            raise ValueError(f"num_frames and stride must be >= 1, got {num_frames}, {stride}")
        self.num_frames, self.stride, self.random_start = num_frames, stride, random_start
        self.channels, self.dtype, self.allow_short = channels, dtype, allow_short
        self._start = 0

    @property
    def span(self) -> int:
        """Source frames covered by one clip."""
        return (self.num_frames - 1) * self.stride + 1

    def randomize(self, data: int) -> None:
        """data: the number of frames of the video."""
        room = max(0, int(data) - self.span)
        self._start = int(self.R.randint(0, room + 1)) if self.random_start else room // 2

    def check_length(self, path: str | os.PathLike, total: int) -> None:
        if total < self.span and not self.allow_short:
            raise MedstDataError(
                f"{path}: {total} frames, fewer than a clip of {self.num_frames} frames at stride {self.stride} "
                f"({self.span} frames); pass allow_short=True and pad with TemporalPad"
            )

    def __call__(self, filename: str | os.PathLike, randomize: bool = True) -> torch.Tensor:
        if randomize:
            total = count_frames(filename)
            self.check_length(filename, total)
            self.randomize(total)
        return load_video_clip(filename, self._start, self.num_frames, self.stride, self.channels, self.dtype)
