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


# ---------------------------------------------------------------- what import medst registers, and opting out


def test_monai_writer_chain_kept_behind_medst_writer():
    from monai.data import ITKWriter, NibabelWriter
    from monai.data.image_writer import SUPPORTED_WRITERS

    from medst.data import NiftiTimeWriter

    for ext in ("nii", "nii.gz"):
        chain = SUPPORTED_WRITERS[ext]
        assert chain[0] is NiftiTimeWriter
        # MONAI's own chain behind it, in MONAI's order, the ITK fallback included
        assert [getattr(w, "_medst_guarded", w) for w in chain[1:]] == [NibabelWriter, ITKWriter]
        assert issubclass(chain[1], NibabelWriter) and issubclass(chain[2], ITKWriter)


def test_fallback_writer_is_used_when_medst_writer_fails(sample, tmp_path, monkeypatch):
    from medst.data import NiftiTimeWriter

    def broken(self, *args, **kwargs):
        raise RuntimeError("medst's writer failed")

    monkeypatch.setattr(NiftiTimeWriter, "write", broken)
    img = LoadImage(ensure_channel_first=True)(sample("head_t1"))
    SaveImage(output_dir=tmp_path, output_postfix="fb", separate_folder=False, print_log=False)(img)
    out = next(tmp_path.glob("*_fb.nii.gz"))
    assert nib.load(out).shape[:3] == tuple(img.shape[1:4])  # written by MONAI's NibabelWriter


def test_unregister_io_gives_monai_its_tables_back(tmp_path):
    from monai.data import ITKWriter, NibabelWriter
    from monai.data.image_writer import SUPPORTED_WRITERS
    from monai.transforms.io.array import SUPPORTED_READERS

    from medst.data import register_io, unregister_io, write_video

    clip = write_video(np.zeros((3, 8, 8), np.uint8), tmp_path / "c.mkv", fps=5)
    try:
        unregister_io()
        assert "videoreader" not in SUPPORTED_READERS and "niftitimereader" not in SUPPORTED_READERS
        assert SUPPORTED_WRITERS["nii.gz"] == (NibabelWriter, ITKWriter)
        assert "mkv" not in SUPPORTED_WRITERS
        assert not any(type(r).__name__.endswith("VideoReader") for r in LoadImage().readers)
        img = LoadImage(reader="medst.data.VideoReader", dtype=None)(clip)  # a config naming the reader still works
        assert tuple(img.shape) == (3, 8, 8)
    finally:
        register_io()
    assert "videoreader" in SUPPORTED_READERS and SUPPORTED_WRITERS["mkv"]
    assert tuple(LoadImage(dtype=None)(clip).shape) == (3, 8, 8)


def test_env_var_opts_out_of_registration(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import medst\n"
        "from monai.data.image_writer import SUPPORTED_WRITERS\n"
        "from monai.transforms.io.array import SUPPORTED_READERS\n"
        "print(sorted(k for k in SUPPORTED_READERS if 'video' in k or 'time' in k),"
        " [w.__name__ for w in SUPPORTED_WRITERS.get('nii.gz', ())], 'mp4' in SUPPORTED_WRITERS)\n"
    )
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root, "OMP_NUM_THREADS": "1"}
    outs = {}
    for value in ("0", "1"):
        r = subprocess.run([sys.executable, "-c", code], env={**env, "MEDST_REGISTER_IO": value},
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        outs[value] = r.stdout.strip().splitlines()[-1]
    assert outs["0"] == "[] [] False"  # MONAI's writers initialise lazily: nothing touched
    assert outs["1"] == "['niftitimereader', 'videoreader'] ['NiftiTimeWriter', 'NibabelWriter', 'ITKWriter'] True"
