"""medst.inferers: fast sliding-window inference (volumes, videos, 4D scans) and streaming for recurrent nets."""

from __future__ import annotations

from .inferer import AtlasPriorInferer, AutocastInferer, StreamingInferer, VolumeInferer
from .utils import (
    OUTPUTS,
    PRECISIONS,
    FastPredictor,
    SequenceStreamer,
    autocast_dtype,
    channel_argmax,
    cpu_has_native_bf16,
    resolve_precision,
    sliding_window_volume,
    stream_sequence,
)

__all__ = [
    "AtlasPriorInferer",
    "AutocastInferer",
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
