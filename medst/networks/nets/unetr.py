"""UNETR presets (MONAI's ``monai.networks.nets.UNETR``) registered by size.

UNETR: Hatamizadeh et al. 2022, "UNETR: Transformers for 3D Medical Image Segmentation",
https://arxiv.org/abs/2103.10497. A 3D scan (B, C, X, Y, Z) and a video seen as a (T, H, W) volume (B, C, T, H, W)
are both three axes: ``img_size`` has three entries either way, each divisible by the patch size 16.
MONAI's class is used as is; these builders only fix the sizes.
"""

from __future__ import annotations

from typing import Any

from monai.networks.nets import UNETR

from medst.networks.registry import register_network

__all__ = ["UNETR", "unetr_small", "unetr_medium", "unetr_paper"]

_EXAMPLE = dict(
    example_kwargs=dict(img_size=(16, 16, 16), in_channels=1, out_channels=2),
    example_input_shape=(1, 1, 16, 16, 16),
    example_output_shape=(1, 2, 16, 16, 16),
)
# the larger presets are tested at small widths (their sizes are checked by parameter counts on the meta device)
_EXAMPLE_SMALL = dict(
    example_kwargs=dict(img_size=(16, 16, 16), in_channels=1, out_channels=2, hidden_size=96, mlp_dim=192, num_heads=2),
    example_input_shape=(1, 1, 16, 16, 16),
    example_output_shape=(1, 2, 16, 16, 16),
)


def _unetr(defaults: dict[str, Any], kwargs: dict[str, Any]) -> UNETR:
    base = dict(in_channels=1, out_channels=2, img_size=(96, 96, 96))
    return UNETR(**dict(dict(base, **defaults), **kwargs))


@register_network(**_EXAMPLE)
def unetr_small(**kwargs: Any) -> UNETR:
    """UNETR, small: feature_size 8, hidden 192, MLP 768, 3 heads (ViT-Tiny widths); input (B, C, *img_size)."""
    return _unetr(dict(feature_size=8, hidden_size=192, mlp_dim=768, num_heads=3), kwargs)


@register_network(**_EXAMPLE_SMALL)
def unetr_medium(**kwargs: Any) -> UNETR:
    """UNETR, medium: feature_size 16, hidden 384, MLP 1536, 6 heads (ViT-Small widths)."""
    return _unetr(dict(feature_size=16, hidden_size=384, mlp_dim=1536, num_heads=6), kwargs)


@register_network(**_EXAMPLE_SMALL)
def unetr_paper(**kwargs: Any) -> UNETR:
    """UNETR as in the paper: feature_size 16, hidden 768, MLP 3072, 12 heads, 96^3 windows (ViT-Base widths)."""
    return _unetr(dict(feature_size=16, hidden_size=768, mlp_dim=3072, num_heads=12), kwargs)
