"""Draw a new image contrast from a tissue label map, as SynthSeg / SynthStrip do.

With a single training subject, a network learns that subject's contrasts. The generative model of SynthSeg
(Billot et al., Medical Image Analysis 2023) and SynthStrip (Hoopes et al., NeuroImage 2022) instead paints every
tissue label with a random intensity (and random noise) at every draw, so that the network has to find a structure
by its shape and context rather than by its grey level. :class:`RandTissueContrast` is that step; blur, bias field,
gamma and noise are MONAI's own transforms (``RandGaussianSmooth``, ``RandBiasField``, ``RandAdjustContrast``,
``RandGaussianNoise``) applied after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.transforms import RandomizableTransform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from medst.data.utils import MedstDataError
from medst.transforms.utility.array import source_name

__all__ = ["RandTissueContrast"]


class RandTissueContrast(RandomizableTransform):
    """With probability ``prob``, replace an image by one drawn from its tissue label map.

    Every label ``k`` of ``tissue`` (non-negative integers, same spatial shape as the image) gets a mean intensity
    drawn uniformly from ``intensity_range`` and a noise standard deviation drawn uniformly from
    ``[0, noise_std_max]``; each voxel is its label's mean plus Gaussian noise of its label's deviation. The map
    has the image's spatial shape and one channel (used for every channel of the image) or as many as the image.
    Labels are drawn independently, so two tissues may come out with the same grey level (the network then has to
    use shape) or with contrasts the real scan never had. The output keeps the image's type, dtype and metadata.

    Args:
        prob: probability of drawing a new contrast (otherwise the image is returned unchanged).
        intensity_range: range of the label means.
        noise_std_max: largest per-label noise standard deviation.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self, prob: float = 0.5, intensity_range: Sequence[float] = (0.0, 1.0), noise_std_max: float = 0.05
    ) -> None:
        super().__init__(prob)
        lo, hi = (float(v) for v in intensity_range)
        if not lo <= hi:
            raise ValueError(f"intensity_range must be (low, high) with low <= high, got {intensity_range}.")
        if noise_std_max < 0:
            raise ValueError(f"noise_std_max must be >= 0, got {noise_std_max}.")
        self.intensity_range = (lo, hi)
        self.noise_std_max = float(noise_std_max)
        self._means: np.ndarray | None = None
        self._stds: np.ndarray | None = None

    def randomize(self, num_labels: int) -> None:  # type: ignore[override]
        super().randomize(None)
        if not self._do_transform:
            return
        self._means = self.R.uniform(*self.intensity_range, size=num_labels)
        self._stds = self.R.uniform(0.0, self.noise_std_max, size=num_labels)

    def __call__(self, img: NdarrayOrTensor, tissue: Any, randomize: bool = True) -> NdarrayOrTensor:
        labels = convert_to_tensor(tissue, track_meta=False)
        name = source_name(tissue) or source_name(img)
        where = f" ({name})" if name else ""
        same_grid = labels.ndim == img.ndim and labels.shape[1:] == tuple(img.shape[1:])
        if not same_grid or labels.shape[0] not in (1, img.shape[0]):
            raise MedstDataError(
                f"RandTissueContrast: tissue map shape {tuple(labels.shape)} does not match image shape "
                f"{tuple(img.shape)}{where}."
            )
        if labels.is_floating_point() and not torch.equal(labels, labels.round()):
            raise MedstDataError(f"RandTissueContrast: the tissue map must hold integer labels{where}.")
        labels = labels.long().expand(tuple(img.shape))
        low, top = (int(labels.min()), int(labels.max())) if labels.numel() else (0, 0)
        if low < 0:
            raise MedstDataError(f"RandTissueContrast: tissue labels must be >= 0{where}.")
        if randomize:
            self.randomize(top + 1)
        if not self._do_transform:
            return img
        if self._means is None or self._stds is None or top >= len(self._means):
            raise RuntimeError("RandTissueContrast: call randomize() with the number of labels first.")
        means = torch.as_tensor(self._means, dtype=torch.float32)
        stds = torch.as_tensor(self._stds, dtype=torch.float32)
        noise = torch.as_tensor(self.R.standard_normal(tuple(labels.shape)), dtype=torch.float32)
        out = means[labels] + stds[labels] * noise
        return convert_to_dst_type(out, img, dtype=img.dtype)[0]
