"""Bad input gives a clear error naming the file, and a failed write leaves nothing behind."""

from __future__ import annotations

import shutil

import av
import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import LoadImage, SaveImage

import medst  # noqa: F401
from medst.data import (
    CorruptFileError,
    MedstDataError,
    UnsupportedFormatError,
    atomic_write_path,
    read_video,
    save_nifti,
    write_video,
)
from medst.data.nifti import NiftiTimeReader

FRAMES = np.zeros((3, 8, 10), np.uint8)


def test_error_classes():
    assert issubclass(CorruptFileError, ValueError) and issubclass(CorruptFileError, OSError)
    assert issubclass(UnsupportedFormatError, MedstDataError) and issubclass(MedstDataError, ValueError)


def test_missing_file(tmp_path):
    missing = tmp_path / "nothing.mp4"
    with pytest.raises(FileNotFoundError, match="nothing.mp4"):
        read_video(missing)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.mp4"
    p.touch()
    with pytest.raises(CorruptFileError, match="empty.mp4.*empty"):
        read_video(p)


def test_garbage_file(tmp_path):
    p = tmp_path / "garbage.avi"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(CorruptFileError, match="garbage.avi"):
        read_video(p)


def test_truncated_mp4_without_index(sample, tmp_path):
    src = sample("video_carphone")  # moov atom at the end: cutting the file loses the index
    data = src.read_bytes()
    p = tmp_path / "cut.mp4"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match="cut.mp4"):
        read_video(p)


def test_truncated_mkv_loses_frames(tmp_path):
    frames = np.random.default_rng(1).integers(0, 255, (40, 32, 32), dtype=np.uint8)
    full = write_video(frames, tmp_path / "full.avi", fps=10)
    data = full.read_bytes()
    p = tmp_path / "cut.avi"
    p.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises((CorruptFileError, MedstDataError), match="cut.avi"):
        read_video(p)
    part, _ = read_video(p, strict=False)  # the frames that are there can still be read on request
    assert 0 < part.shape[0] < 40
    np.testing.assert_array_equal(part, frames[: part.shape[0]])


def test_zero_frames(tmp_path):
    p = tmp_path / "zero.avi"  # a valid AVI header with a video stream and no frames
    with av.open(str(p), "w") as c:
        s = c.add_stream("ffv1", rate=10)
        s.width, s.height, s.pix_fmt = 8, 8, "gray"
        c.start_encoding()
    with pytest.raises(MedstDataError, match="zero.avi.*zero frames"):
        read_video(p)


def test_range_past_the_end(sample):
    with pytest.raises(MedstDataError, match="no frames in the range"):
        read_video(sample("video_carphone"), start=500)


def test_unsupported_suffix(tmp_path):
    p = tmp_path / "clip.xyz"
    p.write_bytes(b"abc")
    with pytest.raises(UnsupportedFormatError, match="clip.xyz"):
        read_video(p)
    with pytest.raises(UnsupportedFormatError, match="unsupported video suffix"):
        write_video(FRAMES, tmp_path / "out.xyz")


def test_unsupported_codec_leaves_no_file(tmp_path):
    with pytest.raises(UnsupportedFormatError, match="no_such_codec|out.mkv"):
        write_video(FRAMES, tmp_path / "out.mkv", codec="no_such_codec")
    assert list(tmp_path.iterdir()) == []


def test_lossless_refused_for_lossy_suffix(tmp_path):
    with pytest.raises(UnsupportedFormatError, match="lossless"):
        write_video(FRAMES, tmp_path / "out.mp4", lossless=True)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("shape", [(8, 10), (3, 8, 10, 2), (2, 3, 4, 5, 6), (0, 8, 10)])
def test_wrong_axes(tmp_path, shape):
    with pytest.raises(MedstDataError, match="bad"):
        write_video(np.zeros(shape, np.uint8), tmp_path / "bad.mkv")
    assert list(tmp_path.iterdir()) == []


def test_values_out_of_range(tmp_path):
    with pytest.raises(MedstDataError, match="scale"):
        write_video(np.full((2, 4, 4), -3.5, np.float32), tmp_path / "neg.mkv")
    with pytest.raises(UnsupportedFormatError, match="16-bit"):
        write_video(np.full((2, 4, 4), 300, np.uint16), tmp_path / "big.mp4")


def test_failed_write_keeps_previous_file(tmp_path):
    good = write_video(FRAMES, tmp_path / "keep.mkv", fps=5)
    before = good.read_bytes()
    with pytest.raises(MedstDataError):
        write_video(np.zeros((2, 3)), good)
    assert good.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.mkv"]


def test_atomic_write_path_cleans_up(tmp_path):
    target = tmp_path / "a.nii.gz"
    with pytest.raises(RuntimeError):
        with atomic_write_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp.name.endswith(".nii.gz")
            tmp.write_bytes(b"partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_write_path(target) as tmp:
        tmp.write_bytes(b"done")
    assert target.read_bytes() == b"done" and list(tmp_path.iterdir()) == [target]


def test_input_never_overwritten(sample, tmp_path):
    src = tmp_path / "in.mkv"
    shutil.copy(sample("video_carphone"), tmp_path / "orig.mp4")
    frames, _ = read_video(tmp_path / "orig.mp4", num_frames=4, grey=True)
    write_video(frames, src, fps=5)
    before = src.read_bytes()
    with pytest.raises(MedstDataError, match="refusing to overwrite the input"):
        write_video(frames, src, fps=5, inputs=[src])
    # through MONAI: SaveImage with a name formatter that maps the output onto the input
    img = LoadImage(ensure_channel_first=True, dtype=None)(src)
    saver = SaveImage(output_dir=tmp_path, output_ext=".mkv", output_postfix="", separate_folder=False,
                      print_log=False, output_name_formatter=lambda meta, s: {"subject": "in", "idx": None})
    with pytest.raises(RuntimeError, match="refusing to overwrite"):
        saver(img)
    assert src.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mkv", "orig.mp4"]


def test_nifti_input_never_overwritten(sample, tmp_path):
    src = tmp_path / "vol.nii.gz"
    shutil.copy(sample("anatomical_t1"), tmp_path / "vol.nii")
    nib.save(nib.load(tmp_path / "vol.nii"), src)
    before = src.read_bytes()
    img = LoadImage(ensure_channel_first=True)(src)
    saver = SaveImage(output_dir=tmp_path, output_postfix="", separate_folder=False, print_log=False,
                      output_name_formatter=lambda meta, s: {"subject": "vol", "idx": None})
    with pytest.raises(RuntimeError, match="refusing to overwrite"):
        saver(img)
    assert src.read_bytes() == before


def test_truncated_nifti(sample, tmp_path):
    data = sample("head_t1").read_bytes()
    p = tmp_path / "cut.nii.gz"
    p.write_bytes(data[: len(data) // 3])
    with pytest.raises(CorruptFileError, match="cut.nii.gz"):
        LoadImage(reader=NiftiTimeReader())(p)
    with pytest.raises(CorruptFileError, match="cut.nii.gz"):  # LoadImage() by suffix
        LoadImage()(p)


def test_not_a_nifti(tmp_path):
    p = tmp_path / "text.nii"
    p.write_text("this is not a NIfTI file " * 20)
    reader = NiftiTimeReader()
    with pytest.raises(CorruptFileError, match="text.nii"):  # raised by get_data, so that LoadImage cannot swallow it
        reader.get_data(reader.read(p))


def test_save_nifti_refuses_bad_dims_without_leaving_files(tmp_path):
    with pytest.raises(Exception):
        save_nifti(np.zeros((2, 2, 2, 2, 2, 2, 2, 2, 2)), tmp_path / "x.nii.gz")
    assert list(tmp_path.iterdir()) == []


def test_video_writer_rejects_many_channels(tmp_path):
    img = MetaTensor(torch.zeros(5, 2, 4, 4), meta={"fps": 5.0})
    with pytest.raises(RuntimeError, match="T, H, W"):
        SaveImage(output_dir=tmp_path, output_ext=".mkv", separate_folder=False, print_log=False)(img)
    assert not any(p.suffix == ".mkv" for p in tmp_path.rglob("*"))


def test_nifti_with_corrupt_gzip_stream_is_an_error(tmp_path):
    """A flipped byte in a stored deflate block inflates fine; only the gzip CRC tells: nibabel never reads it."""
    import gzip

    from monai.data import NibabelReader

    arr = np.arange(4000, dtype=np.int16).reshape(10, 20, 20)
    gz = bytearray(gzip.compress(nib.Nifti1Image(arr, np.eye(4)).to_bytes(), compresslevel=0))
    gz[len(gz) // 2] ^= 0xFF
    p = tmp_path / "flipped.nii.gz"
    p.write_bytes(bytes(gz))
    stock = LoadImage(reader=NibabelReader(), image_only=True)(p)  # MONAI alone: garbage, silently
    assert int((stock.numpy() != arr).sum()) == 1
    with pytest.raises(CorruptFileError, match="flipped.nii.gz.*CRC"):
        LoadImage()(p)
    with pytest.raises(CorruptFileError, match="flipped.nii.gz.*CRC"):  # named: not swallowed by LoadImage
        LoadImage(reader=NiftiTimeReader())(p)


def test_permission_denied_is_not_corrupt(sample, tmp_path, monkeypatch):
    """Reported as permission denied (tests run as root, for whom chmod 000 does not stop reading: the check that
    medst makes, os.access, is made to say no)."""
    import os

    from medst.data import utils as data_utils

    nii = tmp_path / "locked.nii.gz"
    shutil.copy(sample("head_t1"), nii)
    vid = write_video(FRAMES, tmp_path / "locked.mkv", fps=5)
    real_access = os.access
    monkeypatch.setattr(data_utils.os, "access", lambda p, mode: "locked" not in str(p) and real_access(p, mode))
    for path in (nii, vid):
        with pytest.raises(PermissionError, match=f"{path.name}: permission denied") as info:
            LoadImage()(path)
        assert not isinstance(info.value, CorruptFileError)
    with pytest.raises(PermissionError, match="locked.mkv: permission denied"):
        read_video(vid)


def test_permission_error_from_the_library_is_not_corrupt(sample, tmp_path, monkeypatch):
    from medst.data import nifti as nifti_mod

    nii = tmp_path / "vol.nii"
    shutil.copy(sample("anatomical_t1"), nii)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(nii))

    monkeypatch.setattr(nifti_mod.nib, "load", denied)
    with pytest.raises(PermissionError, match="vol.nii: permission denied"):
        LoadImage(reader=NiftiTimeReader())(nii)
