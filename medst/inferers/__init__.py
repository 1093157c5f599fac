"""medst.inferers: fast sliding-window inference (volumes, videos, 4D scans) and streaming for recurrent nets."""

from __future__ import annotations

from .inferer import AtlasPriorInferer, AutocastInferer, MultiClipInferer, StreamingInferer, VolumeInferer
from .utils import (
    CLIP_AVERAGES,
    OUTPUTS,
    PRECISIONS,
    FastPredictor,
    SequenceStreamer,
    autocast_dtype,
    channel_argmax,
    clip_starts,
    cpu_has_native_bf16,
    multi_clip_inference,
    resolve_precision,
    sliding_window_volume,
    stream_sequence,
)

__all__ = [
    "AtlasPriorInferer",
    "AutocastInferer",
    "CLIP_AVERAGES",
    "MultiClipInferer",
    "clip_starts",
    "multi_clip_inference",
    "OUTPUTS",
    "PRECISIONS",
    "FastPredictor",
    "SequenceStreamer",
    "StreamingInferer",
    "autocast_dtype",
    "VolumeInferer",
    "channel_argmax",
    "cpu_has_native_bf16",
    "resolve_precision",
    "sliding_window_volume",
    "stream_sequence",
]
