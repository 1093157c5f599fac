"""Dictionary versions of :mod:`medst.transforms.intensity.array`."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform

from .array import RandTissueContrast

__all__ = ["RandTissueContrastd"]


class RandTissueContrastd(RandomizableTransform, MapTransform):
    """Dictionary :class:`~medst.transforms.RandTissueContrast`: redraw ``keys`` (the image) from the label map
    under ``tissue_key``.

    Put it after the spatial crop (the tissue map cropped with the image, nearest neighbour) and before the spatial
    and intensity augmentations, then drop the tissue map (``DeleteItemsd``). Where a sample has no tissue map
    (e.g. a scan added to the dataset without one) it is passed through unchanged if ``allow_missing_keys``,
    otherwise a ``KeyError`` names the missing key.
    """

    backend = RandTissueContrast.backend

    def __init__(
        self,
        keys: KeysCollection,
        tissue_key: str = "tissue",
        prob: float = 0.5,
        intensity_range: Sequence[float] = (0.0, 1.0),
        noise_std_max: float = 0.05,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.tissue_key = tissue_key
        self.contrast = RandTissueContrast(prob=1.0, intensity_range=intensity_range, noise_std_max=noise_std_max)

    def set_random_state(self, seed: int | None = None, state: Any = None) -> RandTissueContrastd:
        super().set_random_state(seed, state)
        self.contrast.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        if self.tissue_key not in d:
            if self.allow_missing_keys:
                return d
            raise KeyError(
                f"RandTissueContrastd: no tissue map under '{self.tissue_key}' (keys: {sorted(map(str, d))}); "
                "pass allow_missing_keys=True to leave such samples unchanged."
            )
        for i, key in enumerate(self.key_iterator(d)):
            d[key] = self.contrast(d[key], d[self.tissue_key], randomize=i == 0)
        return d
