"""Dictionary versions of :mod:`medst.transforms.prior.array`."""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable

from .array import AtlasMaskPrior, RandSimulatedPrior

__all__ = ["AtlasMaskPriord", "RandSimulatedPriord"]


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


class RandSimulatedPriord(Randomizable, MapTransform):
    """Dictionary :class:`~medst.transforms.RandSimulatedPrior`: a simulated registered brain mask drawn from the
    true mask in ``keys`` (one label key), written to ``prior_key``. Put it in the random part of a training chain,
    before the crops and the spatial augmentation (add ``prior_key`` to their keys, with bilinear or nearest
    interpolation), and concatenate it to the image after the intensity augmentation (``ConcatItemsd``), so the
    prior moves with the image but keeps its values.
    """

    backend = RandSimulatedPrior.backend

    def __init__(self, keys: KeysCollection, prior_key: str = "prior", allow_missing_keys: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"RandSimulatedPriord: give one label key, got {self.keys}")
        self.prior_key = prior_key
        self.simulate = RandSimulatedPrior(**kwargs)

    def set_random_state(self, seed: int | None = None, state: Any = None) -> RandSimulatedPriord:
        super().set_random_state(seed, state)
        self.simulate.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.prior_key] = self.simulate(d[key])
        return d
