"""Input checks name the file and the problem."""

from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor

from medst.data import MedstDataError
from medst.transforms import CheckNdim, CheckNdimd, CheckShapesd


def named(shape, name):
    return MetaTensor(torch.zeros(shape), meta={"filename_or_obj": name})


@pytest.mark.parametrize("ndim, shape", [(4, (1, 5, 6, 7)), ((4, 5), (1, 2, 5, 6, 7)), (5, (3, 2, 2, 2, 2))])
def test_check_ndim_passes(ndim, shape):
    x = named(shape, "a.nii.gz")
    assert CheckNdim(ndim)(x) is x


@pytest.mark.parametrize("ndim, shape", [(4, (5, 6, 7)), (5, (1, 5, 6, 7)), ((4, 5), (1, 2, 3, 4, 5, 6))])
def test_check_ndim_fails_with_file_name(ndim, shape):
    with pytest.raises(MedstDataError, match=r"scan\.nii\.gz.*axes"):
        CheckNdim(ndim)(named(shape, "scan.nii.gz"))


def test_min_frames():
    with pytest.raises(MedstDataError, match="2 frames, fewer than 4"):
        CheckNdim(4, min_frames=4)(named((1, 2, 3, 3), "v.mp4"))
    with pytest.raises(MedstDataError, match="label"):
        CheckNdimd(["image", "label"], 4)({"image": named((1, 2, 3, 3), "i"), "label": named((2, 3, 3), "l")})


def test_check_shapes():
    ok = {"image": named((3, 4, 5, 6), "img.mp4"), "label": named((1, 4, 5, 6), "lab.mkv")}
    assert CheckShapesd(["image", "label"])(ok)["image"] is ok["image"]
    with pytest.raises(MedstDataError, match="image"):
        CheckShapesd(["image", "label"], spatial_only=False)(ok)
    bad = {"image": named((1, 4, 5, 6), "img.nii.gz"), "label": named((1, 4, 5, 7), "lab.nii.gz")}
    with pytest.raises(MedstDataError, match=r"img\.nii\.gz.*lab\.nii\.gz"):
        CheckShapesd(["image", "label"])(bad)
