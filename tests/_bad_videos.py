"""Video files that are not what their names promise, written with PyAV for the error tests."""

from __future__ import annotations

import av
import numpy as np


def audio_only(path):
    """An AAC stream and no video."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for k in range(4):
            frame.pts = k * 1024
            for pk in s.encode(frame):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    return path


def zero_frames(path):
    """A video stream with no frame in it."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=10)
        s.width, s.height, s.pix_fmt = 8, 8, "gray"
        c.start_encoding()
    return path
