"""Dictionary versions of :mod:`medst.transforms.prior.array`."""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform

from .array import AtlasMaskPrior

__all__ = ["AtlasMaskPriord"]


class AtlasMaskPriord(MapTransform):
    """Dictionary :class:`~medst.transforms.AtlasMaskPrior`: bound the brain label of ``keys`` (label maps after
    argmax) by an atlas brain mask registered to ``image_key``.

    Put it in the postprocessing after ``AsDiscreted(argmax=True)`` and before ``Invertd``, while the labels are
    still on the preprocessed image's grid.
    """

    backend = AtlasMaskPrior.backend

    def __init__(
        self,
        keys: KeysCollection,
        atlas_image: str | os.PathLike | Any,
        atlas_mask: str | os.PathLike | Any,
        image_key: str = "image",
        outside_mm: float = 4.0,
        inside_mm: float = 4.0,
        label: int = 1,
        registration_spacing: float = 4.0,
        skull_stripped_atlas: bool = True,
        seed: int = 0,
        deformable_grid_mm: float | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.image_key = image_key
        self.prior = AtlasMaskPrior(
            atlas_image, atlas_mask, outside_mm=outside_mm, inside_mm=inside_mm, label=label,
            registration_spacing=registration_spacing, skull_stripped_atlas=skull_stripped_atlas, seed=seed,
            deformable_grid_mm=deformable_grid_mm,
        )

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if self.image_key not in d:
            raise KeyError(f"AtlasMaskPriord: image_key {self.image_key!r} is not in the data (keys: {list(d)})")
        for key in self.key_iterator(d):
            d[key] = self.prior(d[key], d[self.image_key])
        return d
