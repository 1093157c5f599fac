"""Space-to-depth and depth-to-space (patch reshaping) for 2D and 3D, TorchScript-friendly.

The channel order matches ``torch.nn.functional.pixel_unshuffle`` (and MONAI's ``pixelunshuffle``):
channel ``c * r**d + offset`` holds input channel ``c`` at the patch offset in row-major order (tested against
MONAI's). Every registered network must script with TorchScript (the bundles export TorchScript):
:func:`depth_to_space` is MONAI's ``pixelshuffle``, which scripts; :func:`space_to_depth` is kept because MONAI's
``pixelunshuffle`` does not script in MONAI 1.6.1 (``torch.jit.script`` fails on its list concatenation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.utils import pixelshuffle

__all__ = ["space_to_depth", "depth_to_space"]


def space_to_depth(x: torch.Tensor, factor: int) -> torch.Tensor:
    """(N, C, *S) -> (N, C * factor**d, *(S / factor)), d = 2 or 3 spatial dims; S must be divisible by factor."""
    if factor == 1:
        return x
    for s in x.shape[2:]:
        if s % factor != 0:
            raise ValueError(f"every spatial size must be divisible by the patch size {factor}, got {list(x.shape[2:])}.")
    if x.dim() == 4:
        return F.pixel_unshuffle(x, factor)
    if x.dim() == 5:
        n, c, d, h, w = x.shape
        r = factor
        y = x.reshape(n, c, d // r, r, h // r, r, w // r, r).permute(0, 1, 3, 5, 7, 2, 4, 6)
        return y.reshape(n, c * r * r * r, d // r, h // r, w // r)
    raise ValueError(f"space_to_depth supports 2 or 3 spatial dims, got input of shape {list(x.shape)}.")


def depth_to_space(x: torch.Tensor, factor: int) -> torch.Tensor:
    """The inverse of :func:`space_to_depth`: (N, C * factor**d, *S) -> (N, C, *(S * factor)); MONAI's
    ``pixelshuffle``."""
    if factor == 1:
        return x
    if x.dim() not in (4, 5):
        raise ValueError(f"depth_to_space supports 2 or 3 spatial dims, got input of shape {list(x.shape)}.")
    return pixelshuffle(x, x.dim() - 2, factor)
