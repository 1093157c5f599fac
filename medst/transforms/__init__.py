"""medst transforms, MONAI style: ``<area>/array.py`` + ``<area>/dictionary.py`` pairs.

- :mod:`.temporal`: time on axis 1 of (C, T, H, W) videos and (C, T, X, Y, Z) 4D scans (ChannelToTime,
  TimeToChannel, TemporalCrop, RandTemporalCrop, TemporalStride, TemporalPad, RandTemporalFlip, ResampleFrameRate,
  NormalizeIntensityPerFrame, PerFrame, and the ``...d`` dictionary versions).
- :mod:`.utility`: input checks (CheckNdim, CheckFinite, CheckShapesd).
- :mod:`.intensity`: RandTissueContrast / RandTissueContrastd: a random contrast drawn from a tissue label map
  (SynthSeg / SynthStrip-style domain randomisation).
- :mod:`.prior`: AtlasMaskPrior / AtlasMaskPriord: an atlas brain mask, registered to the scan, bounds a predicted
  brain mask (brain extraction on heads unlike the training ones).
- :mod:`.stream`: for inputs read chunk by chunk (:class:`medst.data.ChunkDataset`): NormalizeSeriesIntensity(d),
  SaveVideoChunksd, SaveNiftiChunksd; and Overlay(d), a label map drawn over its image (MONAI's blend_images).
- :mod:`.motion`: OpticalFlow / OpticalFlowd (OpenCV Farneback flow between consecutive frames) and StackFlow /
  StackFlowd (frames and L stacked flows on the channel axis: the two-stream networks' input).
- :mod:`.classification`: SaveClassification / SaveClassificationd: class probabilities as a CSV row per input
  (read back with read_classification_csv).
- :mod:`.io`: LoadVideoClip / LoadVideoClipd: a (random) training clip of a long video, decoding only the clip.
"""

from __future__ import annotations

from .classification import *  # noqa: F401,F403
from .classification import __all__ as _classification_all
from .intensity import *  # noqa: F401,F403
from .intensity import __all__ as _intensity_all
from .io import *  # noqa: F401,F403
from .io import __all__ as _io_all
from .motion import *  # noqa: F401,F403
from .motion import __all__ as _motion_all
from .prior import *  # noqa: F401,F403
from .prior import __all__ as _prior_all
from .stream import *  # noqa: F401,F403
from .stream import __all__ as _stream_all
from .temporal import *  # noqa: F401,F403
from .temporal import __all__ as _temporal_all
from .utility import *  # noqa: F401,F403
from .utility import __all__ as _utility_all

__all__ = [
    *_temporal_all, *_utility_all, *_io_all, *_intensity_all, *_prior_all, *_stream_all, *_motion_all,
    *_classification_all,
]
