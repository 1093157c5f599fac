"""Shape priors from a registered atlas: a brain mask warped onto the scan bounds what a network may call brain.

A network trained on a handful of heads makes two kinds of gross error on a head unlike them: it takes in tissue
far outside the brain (neck, skull base, eyes) and it leaves out structures far inside it (ventricles, deep grey
matter). An atlas head with its brain mask, registered to the scan by an affine transform, knows roughly where the
brain is, to within the registration's error of a few millimetres. :class:`AtlasMaskPrior` keeps the network's
answer near the atlas mask's border, where the network sees the edge better than an affine atlas can, and
overrules it far from that border:

    brain = (network AND within ``outside_mm`` of the warped mask) OR (deeper than ``inside_mm`` inside it)

Skull-stripped inputs (an atlas head registered to a brain alone shrinks onto it) are handled by registering two
atlases, the whole head and the head masked to its brain, and keeping the warped mask that agrees best (Dice) with
the network's own answer. Registration is SimpleITK's (affine, Mattes mutual information, two levels, on a 4 mm
grid): about half a second a head on a 2-core CPU.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import Randomizable, Transform
from monai.utils import TransformBackends

__all__ = ["AtlasMaskPrior", "RandSimulatedPrior", "register_atlas_mask", "to_sitk_image"]

logger = logging.getLogger(__name__)

# the registrations of the last scans (see AtlasMaskPrior._registered)
_REGISTERED: OrderedDict[tuple, list[tuple[str, np.ndarray]]] = OrderedDict()

# RAS (MONAI, nibabel) to LPS (ITK): negate the first two world axes
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def to_sitk_image(array: np.ndarray, affine: np.ndarray):
    """A SimpleITK image of a 3D ``array`` indexed (x, y, z) with a RAS voxel-to-world ``affine`` (MONAI's)."""
    import SimpleITK as sitk

    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 3:
        raise ValueError(f"expected a 3D array (x, y, z), got shape {array.shape}")
    lps = _RAS_TO_LPS @ np.asarray(affine, dtype=np.float64)
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    if np.any(spacing <= 0):
        raise ValueError(f"the affine has a zero-length axis: {affine.tolist()}")
    img = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    img.SetSpacing([float(s) for s in spacing])
    img.SetOrigin([float(o) for o in lps[:3, 3]])
    img.SetDirection([float(d) for d in (lps[:3, :3] / spacing).ravel()])
    return img


def _resample_isotropic(img, spacing: float):
    import SimpleITK as sitk

    size = [max(1, int(round(n * s / spacing))) for n, s in zip(img.GetSize(), img.GetSpacing())]
    return sitk.Resample(img, size, sitk.Transform(), sitk.sitkLinear, img.GetOrigin(), [spacing] * 3,
                         img.GetDirection(), 0.0, sitk.sitkFloat32)


def _affine_registration(fixed, moving, spacing: float, seed: int):
    """Affine transform mapping ``fixed`` points into ``moving``, by Mattes mutual information at ``spacing`` mm."""
    import SimpleITK as sitk

    f, m = _resample_isotropic(fixed, spacing), _resample_isotropic(moving, spacing)
    init = sitk.CenteredTransformInitializer(
        f, m, sitk.AffineTransform(3), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.25, int(seed) + 1)  # SimpleITK reads 0 as sitkWallClock: a new seed each run
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0, minStep=1e-4, numberOfIterations=300, relaxationFactor=0.7
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([2, 1])
    reg.SetSmoothingSigmasPerLevel([1.0, 0.0])
    reg.SetInitialTransform(init, inPlace=False)
    return reg.Execute(f, m)


def _bspline_registration(fixed, moving, spacing: float, seed: int, grid_mm: float, iterations: int):
    """A B-spline transform (control points every ``grid_mm``) mapping ``fixed`` points into ``moving``."""
    import SimpleITK as sitk

    f, m = _resample_isotropic(fixed, spacing), _resample_isotropic(moving, spacing)
    mesh = [max(1, int(round(n * s / grid_mm))) for n, s in zip(f.GetSize(), f.GetSpacing())]
    transform = sitk.BSplineTransformInitializer(f, mesh)
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.25, int(seed) + 1)  # 0 would be sitkWallClock, as in the affine stage
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=iterations)
    reg.SetShrinkFactorsPerLevel([2, 1])
    reg.SetSmoothingSigmasPerLevel([1.0, 0.0])
    reg.SetInitialTransform(transform, inPlace=True)
    return reg.Execute(f, m)


def register_atlas_mask(image, atlas_image, atlas_mask, spacing: float = 4.0, seed: int = 0,
                        deformable_grid_mm: float | None = None, deformable_iterations: int = 30):
    """The atlas mask warped onto ``image`` (SimpleITK images) by an affine registration of ``atlas_image``,
    refined by a B-spline registration with control points every ``deformable_grid_mm`` when it is given.

    Returns:
        the warped mask as a float array in [0, 1] indexed (x, y, z) on ``image``'s grid.
    """
    import SimpleITK as sitk

    transform = _affine_registration(image, atlas_image, spacing, seed)
    warped = sitk.Resample(atlas_mask, image, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    if deformable_grid_mm:
        atlas_on_image = sitk.Resample(atlas_image, image, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        bspline = _bspline_registration(image, atlas_on_image, spacing, seed, float(deformable_grid_mm),
                                        int(deformable_iterations))
        warped = sitk.Resample(warped, image, bspline, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(warped).transpose(2, 1, 0)


def _source_key(x: Any) -> Any:
    """An atlas in the registration cache's key: its path, or the identity of an image object given directly."""
    return os.fspath(x) if isinstance(x, (str, os.PathLike)) else ("object", id(x))


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return float(2.0 * np.logical_and(a, b).sum() / total) if total else 1.0


class AtlasMaskPrior(Transform):
    """Bound a brain mask by an atlas brain mask registered to the scan (see the module docstring).

    Args:
        atlas_image: the atlas head (a NIfTI path, or a SimpleITK image), any grid and orientation.
        atlas_mask: its brain mask (path or SimpleITK image), on the atlas image's grid (nonzero = brain).
        outside_mm: the network's brain voxels farther than this outside the warped atlas mask are removed.
        inside_mm: voxels deeper than this inside the warped atlas mask are brain whatever the network said.
        label: the brain label in the mask; other labels are left as they are.
        registration_spacing: the grid (mm) the registration runs on.
        skull_stripped_atlas: also register the atlas head masked to its brain, and keep the warped mask that
            agrees best with the network's (for inputs that are already brain-extracted).
        seed: the registration's sampling seed (the result is the same for the same seed).
        deformable_grid_mm: refine the affine registration by a B-spline one with control points this far apart
            (``None``: affine only).

    Example::

        prior = AtlasMaskPrior("atlas_t1.nii.gz", "atlas_mask.nii.gz")
        labels = prior(labels, image)   # both (1, X, Y, Z) MetaTensors on the same grid
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        atlas_image: str | os.PathLike | Any,
        atlas_mask: str | os.PathLike | Any,
        outside_mm: float = 4.0,
        inside_mm: float = 4.0,
        label: int = 1,
        registration_spacing: float = 4.0,
        skull_stripped_atlas: bool = True,
        seed: int = 0,
        deformable_grid_mm: float | None = None,
    ) -> None:
        if outside_mm < 0 or inside_mm < 0:
            raise ValueError(f"outside_mm and inside_mm must be >= 0, got {outside_mm} and {inside_mm}")
        if registration_spacing <= 0:
            raise ValueError(f"registration_spacing must be > 0, got {registration_spacing}")
        self.atlas_image, self.atlas_mask = atlas_image, atlas_mask
        self.outside_mm, self.inside_mm = float(outside_mm), float(inside_mm)
        self.label = int(label)
        self.registration_spacing = float(registration_spacing)
        self.skull_stripped_atlas = skull_stripped_atlas
        self.seed = int(seed)
        if deformable_grid_mm is not None and deformable_grid_mm <= 0:
            raise ValueError(f"deformable_grid_mm must be > 0 (or None), got {deformable_grid_mm}")
        self.deformable_grid_mm = deformable_grid_mm
        self._atlases: list | None = None

    def _load(self, x: Any, name: str):
        import SimpleITK as sitk

        if isinstance(x, (str, os.PathLike)):
            if not os.path.isfile(x):
                raise FileNotFoundError(f"AtlasMaskPrior: {name} {str(x)!r} does not exist")
            x = sitk.ReadImage(str(x), sitk.sitkFloat32)
        if x.GetDimension() != 3:
            raise ValueError(f"AtlasMaskPrior: {name} must be a 3D image, got {x.GetDimension()}D")
        return sitk.Cast(x, sitk.sitkFloat32)

    def atlases(self) -> list[tuple[str, Any, Any]]:
        """(name, atlas image, atlas mask) for each atlas tried, loaded once."""
        if self._atlases is None:
            import SimpleITK as sitk

            head, mask = self._load(self.atlas_image, "atlas_image"), self._load(self.atlas_mask, "atlas_mask")
            self._atlases = [("head", head, mask)]
            if self.skull_stripped_atlas:
                brain = sitk.Mask(head, sitk.Cast(mask > 0.5, sitk.sitkUInt8))
                self._atlases.append(("brain", brain, mask))
        return self._atlases

    def _registered(self, data: np.ndarray, affine: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """(atlas name, warped mask) for each atlas on the scan ``data`` (X, Y, Z) with ``affine``; the last two
        scans' registrations are kept, so a network that takes the prior as an input and a post-processing step
        that bounds its answer by it (or two passes of one network) register each scan once."""
        digest = hashlib.sha1(np.ascontiguousarray(data, dtype=np.float32).tobytes())
        digest.update(np.ascontiguousarray(affine, dtype=np.float64).tobytes())
        key = (digest.hexdigest(), data.shape, self.registration_spacing, self.seed, self.deformable_grid_mm,
               self.skull_stripped_atlas, _source_key(self.atlas_image), _source_key(self.atlas_mask))
        if key in _REGISTERED:
            _REGISTERED.move_to_end(key)
            return _REGISTERED[key]
        fixed = to_sitk_image(data, affine)
        result = [
            (name, register_atlas_mask(fixed, head, mask, self.registration_spacing, self.seed,
                                       self.deformable_grid_mm) > 0.5)
            for name, head, mask in self.atlases()
        ]
        _REGISTERED[key] = result
        while len(_REGISTERED) > 2:
            _REGISTERED.popitem(last=False)
        return result

    def warped_mask(self, image: NdarrayOrTensor, reference: np.ndarray | None = None) -> np.ndarray:
        """The warped atlas mask (bool, ``image``'s spatial grid); with several atlases, the one closest (Dice) to
        ``reference`` (the network's brain mask)."""
        affine = image.affine.numpy() if isinstance(image, MetaTensor) else np.eye(4)
        data = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
        if data.ndim != 4 or data.shape[0] < 1:
            raise ValueError(f"AtlasMaskPrior: image must be channel-first (C, X, Y, Z), got shape {data.shape}")
        best, best_dice, best_name = None, -1.0, ""
        for name, warped in self._registered(data[0], affine):
            dice = _dice(warped, reference) if reference is not None else 0.0
            logger.debug("atlas %s: Dice with the network's mask %.4f", name, dice)
            if best is None or dice > best_dice:
                best, best_dice, best_name = warped, dice, name
        logger.info("atlas prior: %s atlas (Dice with the network's mask %.3f)", best_name, best_dice)
        return best.copy()

    def __call__(self, labels: NdarrayOrTensor, image: NdarrayOrTensor) -> NdarrayOrTensor:
        """
        Args:
            labels: channel-first label map (1, X, Y, Z) on the image's grid (after argmax).
            image: the scan (C, X, Y, Z), with its affine (a MetaTensor), which the atlas is registered to.

        Returns:
            the labels, of the same type and metadata, with the brain label bounded by the warped atlas mask.
        """
        from scipy import ndimage

        if tuple(labels.shape[1:]) != tuple(image.shape[1:]) or labels.shape[0] != 1:
            raise ValueError(
                f"AtlasMaskPrior: labels {tuple(labels.shape)} must be (1, *spatial) on the image's grid "
                f"{tuple(image.shape[1:])}; put it before Invertd"
            )
        lab = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        brain = lab[0] == self.label
        prior = self.warped_mask(image, reference=brain)
        affine = image.affine.numpy() if isinstance(image, MetaTensor) else np.eye(4)
        spacing = np.linalg.norm(affine[:3, :3], axis=0)
        outside = ndimage.distance_transform_edt(~prior, sampling=spacing) > self.outside_mm
        deep = ndimage.distance_transform_edt(prior, sampling=spacing) > self.inside_mm
        new = (brain & ~outside) | deep
        out = lab.copy()
        out[0][brain & ~new] = 0
        out[0][new] = self.label
        logger.info(
            "atlas prior: %d voxels removed (outside), %d added (deep inside)", int((brain & ~new).sum()),
            int((new & ~brain).sum())
        )
        if isinstance(labels, torch.Tensor):
            result = torch.as_tensor(out, dtype=labels.dtype, device=labels.device)
            if isinstance(labels, MetaTensor):
                result = MetaTensor(result, meta=labels.meta, applied_operations=labels.applied_operations)
            return result
        return out



class RandSimulatedPrior(Randomizable, Transform):
    """A brain mask as an affine atlas registration would give it, simulated from the true mask for training a
    network that takes the registered atlas mask as a second input channel (:class:`AtlasPriorInferer`).

    An affine registration of an atlas head lands the atlas's brain border a few millimetres from the subject's,
    by a small global misalignment and by the difference of the two brains' shapes. Both are drawn here: a random
    affine (rotation, scaling, translation about the volume centre) and a smooth random elastic deformation of the
    mask, which is then thresholded at one half, so the simulated prior is binary like a registered one. With
    probability ``prob_unknown`` the prior is a constant ``unknown_value`` instead: the network also learns to work
    with no prior, which is what the first of :class:`AtlasPriorInferer`'s two passes gives it.

    Args:
        rotate_deg: largest rotation about each axis (degrees).
        scale: largest relative scaling per axis.
        translate_vox: largest translation per axis (voxels).
        elastic_sigma: smoothing of the elastic displacement field (voxels): the size of the shape differences.
        elastic_magnitude: multiplier of the smoothed displacement (MONAI's ``Rand3DElastic`` magnitude range).
        prob_unknown: probability of the constant "no prior" channel.
        unknown_value: its value.
        grid_factor: the warp runs on a grid this many times coarser (the mask average-pooled, warped, then
            interpolated back): the deformation is smooth, and this makes it about ``grid_factor ** 3`` times
            cheaper. The translation is still given in full-resolution voxels.

    Example::

        prior = RandSimulatedPrior()(label)   # (1, X, Y, Z) float32 in {0, 1} (or all unknown_value)
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        rotate_deg: float = 4.0,
        scale: float = 0.04,
        translate_vox: float = 1.5,
        elastic_sigma: tuple[float, float] = (6.0, 9.0),
        elastic_magnitude: tuple[float, float] = (0.0, 400.0),
        prob_unknown: float = 0.2,
        unknown_value: float = 0.5,
        grid_factor: int = 2,
    ) -> None:
        from monai.transforms import Rand3DElastic

        if not 0.0 <= prob_unknown <= 1.0:
            raise ValueError(f"prob_unknown must be in [0, 1], got {prob_unknown}")
        if min(rotate_deg, scale, translate_vox) < 0:
            raise ValueError(f"rotate_deg, scale and translate_vox must be >= 0, got {rotate_deg}, {scale}, {translate_vox}")
        if int(grid_factor) < 1:
            raise ValueError(f"grid_factor must be >= 1, got {grid_factor}")
        self.prob_unknown, self.unknown_value = float(prob_unknown), float(unknown_value)
        self.grid_factor = f = int(grid_factor)
        r = float(np.deg2rad(rotate_deg))
        self.warp = Rand3DElastic(
            sigma_range=tuple(s / f for s in elastic_sigma), magnitude_range=tuple(m / f**2.5 for m in elastic_magnitude),  # smoothed noise: std ~ sigma^-1.5
            prob=1.0, rotate_range=(r, r, r), scale_range=(scale,) * 3, translate_range=(translate_vox / f,) * 3,
            mode="bilinear", padding_mode="zeros",
        )
        self._unknown = False

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.warp.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        self._unknown = self.R.rand() < self.prob_unknown

    def __call__(self, label: NdarrayOrTensor) -> torch.Tensor:
        """``label``: (1, X, Y, Z), nonzero = brain. Returns a float32 tensor of the same shape (and metadata)."""
        if label.ndim != 4 or label.shape[0] != 1:
            raise ValueError(f"RandSimulatedPrior: label must be (1, X, Y, Z), got shape {tuple(label.shape)}")
        self.randomize()
        mask = torch.as_tensor(label).float().gt(0).float()
        if self._unknown:
            out = torch.full_like(mask, self.unknown_value)
        else:
            f = self.grid_factor
            coarse = F.avg_pool3d(mask[None], f, ceil_mode=True)[0] if f > 1 else mask
            warped = torch.as_tensor(self.warp(coarse, randomize=True)).float()
            if f > 1:
                warped = F.interpolate(warped[None], size=mask.shape[1:], mode="trilinear", align_corners=False)[0]
            out = warped.gt(0.5).float()
        if isinstance(label, MetaTensor):
            out = MetaTensor(out.as_tensor() if isinstance(out, MetaTensor) else out, meta=label.meta)
        return out
