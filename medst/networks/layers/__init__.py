"""medst.networks.layers"""

from __future__ import annotations

from .patch import depth_to_space, space_to_depth

__all__ = ["space_to_depth", "depth_to_space"]
