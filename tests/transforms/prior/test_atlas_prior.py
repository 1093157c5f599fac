"""AtlasMaskPrior: an atlas brain mask registered to the scan bounds a predicted brain mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medst.transforms import AtlasMaskPrior, AtlasMaskPriord, to_sitk_image

SPACING = 2.0


def _ellipsoid(shape, centre, radii):
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=0).astype(np.float32)
    r = sum(((grid[i] - centre[i]) / radii[i]) ** 2 for i in range(3))
    return r <= 1.0


def _head(shape, centre, radii):
    """A synthetic 'head': a bright skull shell around a darker brain, with a dark 'ventricle' in the middle."""
    brain = _ellipsoid(shape, centre, radii)
    head = _ellipsoid(shape, centre, [r + 3 for r in radii])
    ventricle = _ellipsoid(shape, centre, [r * 0.3 for r in radii])
    img = np.where(head, 1.0, 0.0) * 0.9
    img[brain] = 0.5
    img[ventricle] = 0.15
    return img.astype(np.float32), brain


def _affine(origin=(0.0, 0.0, 0.0)):
    aff = np.diag([SPACING, SPACING, SPACING, 1.0])
    aff[:3, 3] = origin
    return aff


def _atlas():
    import SimpleITK as sitk

    img, brain = _head((40, 44, 40), (20, 22, 20), (11, 13, 10))
    return (to_sitk_image(img, _affine((-40.0, -44.0, -40.0))),
            sitk.Cast(to_sitk_image(brain.astype(np.float32), _affine((-40.0, -44.0, -40.0))), sitk.sitkFloat32))


def test_to_sitk_image_maps_voxels_to_lps_world_points():
    aff = np.array([[0.0, 0.0, -3.0, 10.0], [-2.0, 0.0, 0.0, 20.0], [0.0, 2.0, 0.0, -5.0], [0, 0, 0, 1.0]])  # LSA-like
    img = to_sitk_image(np.zeros((4, 5, 6), np.float32), aff)
    assert img.GetSize() == (4, 5, 6)
    for ijk in ((0, 0, 0), (3, 1, 2), (1, 4, 5)):
        ras = aff @ np.array([*ijk, 1.0])
        lps = img.TransformIndexToPhysicalPoint(ijk)
        np.testing.assert_allclose(lps, [-ras[0], -ras[1], ras[2]], atol=1e-5)


def test_prior_removes_far_outside_and_fills_deep_inside_on_a_moved_head():
    atlas_img, atlas_mask = _atlas()
    # the scan: the same kind of head, shifted by 6 mm and 10% larger, on another grid
    img, brain = _head((44, 48, 44), (23, 24, 21), (12.1, 14.3, 11.0))
    image = MetaTensor(torch.as_tensor(img)[None], affine=torch.as_tensor(_affine((-46.0, -50.0, -42.0))))
    # a "network" answer with two gross errors: a blob far outside the brain, and a hole deep inside it
    pred = brain.copy()
    pred[2:6, 2:6, 2:6] = True  # outside the head, in a corner
    hole = _ellipsoid(pred.shape, (23, 24, 21), (3, 3, 3))
    pred[hole] = False
    labels = MetaTensor(torch.as_tensor(pred.astype(np.uint8))[None], affine=image.affine,
                        meta={"filename_or_obj": "scan.nii.gz"})
    out = AtlasMaskPrior(atlas_img, atlas_mask, outside_mm=4.0, inside_mm=4.0)(labels, image)
    assert isinstance(out, MetaTensor) and out.dtype == labels.dtype and out.shape == labels.shape
    assert out.meta["filename_or_obj"] == "scan.nii.gz" and torch.equal(out.affine, labels.affine)
    res = out[0].numpy().astype(bool)
    assert not res[2:6, 2:6, 2:6].any()  # the far blob is gone
    assert res[hole].all()  # the deep hole is filled
    dice = 2 * (res & brain).sum() / (res.sum() + brain.sum())
    assert dice > 0.97  # and the border is the network's


def test_prior_picks_the_brain_only_atlas_for_a_skull_stripped_scan():
    atlas_img, atlas_mask = _atlas()
    img, brain = _head((44, 48, 44), (22, 24, 22), (11, 13, 10))
    img = np.where(brain, img, 0.0).astype(np.float32)  # skull-stripped: nothing outside the brain
    image = MetaTensor(torch.as_tensor(img)[None], affine=torch.as_tensor(_affine()))
    prior = AtlasMaskPrior(atlas_img, atlas_mask)
    warped = prior.warped_mask(image, reference=brain)
    dice = 2 * (warped & brain).sum() / (warped.sum() + brain.sum())
    assert dice > 0.9
    head_only = AtlasMaskPrior(atlas_img, atlas_mask, skull_stripped_atlas=False).warped_mask(image, reference=brain)
    assert 2 * (head_only & brain).sum() / (head_only.sum() + brain.sum()) < dice


def test_dictionary_version_and_errors(tmp_path):
    atlas_img, atlas_mask = _atlas()
    img, brain = _head((40, 44, 40), (20, 22, 20), (11, 13, 10))
    image = MetaTensor(torch.as_tensor(img)[None], affine=torch.as_tensor(_affine((-40.0, -44.0, -40.0))))
    labels = MetaTensor(torch.as_tensor(brain.astype(np.uint8))[None], affine=image.affine)
    d = AtlasMaskPriord("pred", atlas_img, atlas_mask)({"pred": labels, "image": image})
    assert torch.equal(d["pred"], labels)  # a perfect answer on the atlas itself is kept
    with pytest.raises(KeyError, match="image_key"):
        AtlasMaskPriord("pred", atlas_img, atlas_mask)({"pred": labels})
    with pytest.raises(ValueError, match="before Invertd"):
        AtlasMaskPrior(atlas_img, atlas_mask)(labels[:, :-2], image)
    with pytest.raises(FileNotFoundError, match="atlas_image"):
        AtlasMaskPrior(tmp_path / "missing.nii.gz", atlas_mask)(labels, image)
    with pytest.raises(ValueError, match="outside_mm"):
        AtlasMaskPrior(atlas_img, atlas_mask, outside_mm=-1)


def test_deformable_stage_follows_a_shape_the_affine_cannot():
    atlas_img, atlas_mask = _atlas()
    shape, centre, radii = (44, 48, 44), (22, 24, 22), (11, 13, 10)
    img, brain = _head(shape, centre, radii)
    # a lobe on one side (not an affine change of the atlas' ellipsoid): brain and skull grow there
    lobe = _ellipsoid(shape, (22, 36, 22), (7, 6, 6))
    img[_ellipsoid(shape, (22, 36, 22), (10, 9, 9)) & ~brain] = 0.9
    img[lobe] = 0.5
    brain = brain | lobe
    image = MetaTensor(torch.as_tensor(img)[None], affine=torch.as_tensor(_affine()))
    affine_only = AtlasMaskPrior(atlas_img, atlas_mask, skull_stripped_atlas=False).warped_mask(image)
    deformable = AtlasMaskPrior(atlas_img, atlas_mask, skull_stripped_atlas=False,
                                deformable_grid_mm=20.0).warped_mask(image)

    def dice(a):
        return 2 * (a & brain).sum() / (a.sum() + brain.sum())

    # measured: affine 0.955, deformable 0.962 (the same every run, to 1e-4)
    assert dice(deformable) > dice(affine_only) + 0.004
    with pytest.raises(ValueError, match="deformable_grid_mm"):
        AtlasMaskPrior(atlas_img, atlas_mask, deformable_grid_mm=0)
