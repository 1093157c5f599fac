"""4D NIfTI round trips keep the affine, pixdim[4] and the time units; 3D files behave as with MONAI."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    LoadImage,
    LoadImaged,
    NormalizeIntensityd,
    Orientationd,
    SaveImage,
)

import medst  # noqa: F401
from medst.data import NiftiTimeReader, save_nifti
from medst.transforms import ChannelToTime, ChannelToTimed, TimeToChannel, TimeToChanneld


def test_monai_header_correction_is_undone(sample):
    path = sample("fmri_4d")
    ref = nib.load(path)
    img = LoadImage(ensure_channel_first=True)(path)  # NiftiTimeReader is picked for .nii.gz
    assert tuple(img.shape) == (2, 128, 96, 24)
    assert float(img.meta["pixdim"][4]) == pytest.approx(float(ref.header["pixdim"][4]))
    assert img.meta["time_units"] == ref.header.get_xyzt_units()[1]
    assert img.meta["time_spacing"] == pytest.approx(float(ref.header.get_zooms()[3]))  # 'sec' units
    np.testing.assert_allclose(img.affine.numpy(), ref.affine, atol=1e-5)


def test_fmri_round_trip_through_channel_to_time(sample, tmp_path):
    path = sample("fmri_4d")
    ref = nib.load(path)
    img = LoadImage(ensure_channel_first=True, dtype=None)(path)
    vol = ChannelToTime()(img)
    assert tuple(vol.shape) == (1, 2, 128, 96, 24) and vol.meta["num_frames"] == 2
    back = TimeToChannel()(vol)
    SaveImage(output_dir=tmp_path, output_postfix="rt", separate_folder=False, print_log=False,
              output_dtype=None)(back)
    out = nib.load(tmp_path / "example4d_rt.nii.gz")
    assert out.shape == ref.shape
    np.testing.assert_allclose(out.affine, ref.affine, atol=1e-5)
    assert out.header["pixdim"][4] == pytest.approx(ref.header["pixdim"][4])
    assert out.header.get_xyzt_units() == ref.header.get_xyzt_units()
    np.testing.assert_array_equal(np.asanyarray(out.dataobj), np.asanyarray(ref.dataobj))


def test_dict_pipeline_per_frame_then_back(sample, tmp_path):
    path = sample("fmri_functional")
    ref = nib.load(path)
    pipe = Compose([
        LoadImaged("image"), EnsureChannelFirstd("image"), Orientationd("image", axcodes="RAS"),
        NormalizeIntensityd("image", channel_wise=True), ChannelToTimed("image"),
    ])
    d = pipe({"image": path})
    assert tuple(d["image"].shape) == (1, ref.shape[3], *ref.shape[:3])
    assert d["image"].meta["time_spacing"] == pytest.approx(ref.header.get_zooms()[3])
    lab = TimeToChanneld("image")(d)["image"]
    assert tuple(lab.shape) == (ref.shape[3], *ref.shape[:3])
    SaveImage(output_dir=tmp_path, output_postfix="n", separate_folder=False, print_log=False)(lab)
    out = nib.load(tmp_path / "functional_n.nii.gz")
    assert out.shape == ref.shape
    assert out.header.get_zooms()[3] == pytest.approx(ref.header.get_zooms()[3])
    np.testing.assert_allclose(out.affine, lab.affine.numpy(), atol=1e-4)  # the RAS affine after Orientation


def test_3d_file_unchanged(sample, tmp_path):
    path = sample("anatomical_t1")
    ref = nib.load(path)
    img = LoadImage(ensure_channel_first=True)(path)
    assert "time_spacing" not in img.meta
    SaveImage(output_dir=tmp_path, output_postfix="s", separate_folder=False, print_log=False)(img)
    out = nib.load(tmp_path / "anatomical_s.nii.gz")
    assert out.shape == ref.shape
    np.testing.assert_allclose(out.affine, ref.affine, atol=1e-5)
    np.testing.assert_allclose(out.get_fdata(), ref.get_fdata())


def test_save_nifti_helper_sets_time(tmp_path):
    data = np.random.default_rng(0).random((4, 5, 6, 3)).astype(np.float32)
    aff = np.diag([1.5, 2.0, 2.5, 1.0])
    p = save_nifti(data, tmp_path / "t.nii.gz", affine=aff, time_spacing=0.8)
    out = nib.load(p)
    assert out.header.get_zooms() == pytest.approx((1.5, 2.0, 2.5, 0.8))
    assert out.header.get_xyzt_units()[1] == "sec"
    np.testing.assert_allclose(out.affine, aff)
    img = LoadImage(reader=NiftiTimeReader(), image_only=True)(p)
    assert img.meta["time_spacing"] == pytest.approx(0.8)


def test_msec_units_converted(tmp_path):
    data = np.zeros((3, 3, 3, 4), np.int16)
    img = nib.Nifti1Image(data, np.eye(4))
    img.header.set_zooms((1, 1, 1, 40.0))
    img.header.set_xyzt_units("mm", "msec")
    nib.save(img, tmp_path / "ms.nii")
    loaded = LoadImage(ensure_channel_first=True)(tmp_path / "ms.nii")
    assert loaded.meta["time_spacing"] == pytest.approx(0.04)
    SaveImage(output_dir=tmp_path, output_postfix="o", separate_folder=False, print_log=False)(loaded)
    out = nib.load(tmp_path / "ms_o.nii.gz")
    assert out.header.get_zooms()[3] == pytest.approx(40.0)
    assert out.header.get_xyzt_units()[1] == "msec"
