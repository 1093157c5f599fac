"""medst: volumetric segmentation of 3D scans, 4D scans and videos, as MONAI bundles.

Everything is a volume: a channel-first array ``(C, *axes)``; a 3D scan is ``(C, X, Y, Z)``, a video
``(C, T, H, W)`` and a 4D scan ``(C, T, X, Y, Z)``. Importing medst registers its video reader and writer with
MONAI, so that ``LoadImage`` and ``SaveImage`` handle video files by suffix.
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import data  # noqa: F401  (registers the video reader and writer with MONAI)
from .api import load_bundle  # noqa: E402,F401  (light: torch and MONAI load with the first bundle)
from . import inferers  # noqa: E402,F401
from . import transforms  # noqa: E402,F401
from . import networks  # noqa: E402,F401
from .networks import create_network, list_networks  # noqa: E402,F401
