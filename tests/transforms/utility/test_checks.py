"""Input checks name the file and the problem."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medst.data import MedstDataError
from medst.transforms import CheckFinite, CheckFinited, CheckNdim, CheckNdimd, CheckShapesd


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


def test_check_finite_passes_finite_and_integer_arrays():
    x = named((1, 4, 4, 4), "ok.nii.gz")
    assert CheckFinite()(x) is x
    lab = torch.zeros(1, 3, 3, 3, dtype=torch.uint8)
    assert CheckFinite()(lab) is lab


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_check_finite_raises_naming_key_file_and_position(bad):
    x = named((1, 4, 4, 4), "scan.nii.gz")
    x[0, 1, 2, 3] = bad
    with pytest.raises(MedstDataError, match=r"image in scan\.nii\.gz has 1 non-finite.*\(0, 1, 2, 3\)"):
        CheckFinited("image")({"image": x})


def test_check_finite_replace_logs_and_replaces(caplog):
    x = named((1, 2, 3, 3), "scan.nii.gz")
    x[0, 0, 0, 0], x[0, 0, 0, 1] = 5.0, -2.0
    x[0, 1, 1, 1], x[0, 1, 1, 2], x[0, 1, 2, 2] = float("nan"), float("inf"), -float("inf")
    with caplog.at_level(logging.WARNING):
        out = CheckFinited("image", on_nonfinite="replace")({"image": x})["image"]
    assert "scan.nii.gz" in caplog.text and "3 non-finite" in caplog.text
    assert bool(torch.isfinite(out).all())
    assert float(out[0, 1, 1, 1]) == 0.0 and float(out[0, 1, 1, 2]) == 5.0 and float(out[0, 1, 2, 2]) == -2.0
    assert out.meta["filename_or_obj"] == "scan.nii.gz"
    arr = np.array([[1.0, np.nan]], dtype=np.float32)
    assert CheckFinite("replace", nan=-1.0)(arr).tolist() == [[1.0, -1.0]]


def test_one_nan_voxel_would_empty_a_segmentation():
    """Why the check exists: MONAI's sliding window over one NaN voxel gives an all-background argmax."""
    from monai.inferers import sliding_window_inference

    net = torch.nn.Conv3d(1, 2, 3, padding=1)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.copy_(torch.tensor([0.0, 1.0]))  # class 1 everywhere, whatever the input
        net.weight[1, 0, 1, 1, 1] = 1e-3
    img = torch.rand(1, 1, 16, 16, 16)
    assert bool((sliding_window_inference(img, 8, 1, net).argmax(1) == 1).all())
    img[0, 0, 3, 3, 3] = float("nan")
    with torch.no_grad():
        normed = (img - img.mean()) / img.std()  # a whole-volume normalisation spreads the NaN everywhere
        labels = sliding_window_inference(normed, 8, 1, net).argmax(1)
    assert int((labels == 1).sum()) == 0  # empty, silently
    with pytest.raises(MedstDataError):
        CheckFinite()(img)


def test_check_shapes_on_chosen_axes():
    d = {"image": named((1, 10, 8, 8), "in.npy"), "label": named((1, 20, 8, 8), "out.npy")}
    assert CheckShapesd(["image", "label"], axes=[2, 3])(d)["label"] is d["label"]
    with pytest.raises(MedstDataError, match=r"axes \(1, 2\)"):
        CheckShapesd(["image", "label"], axes=[1, 2])(d)
