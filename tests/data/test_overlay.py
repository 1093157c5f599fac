"""Overlay pictures: the colours land where the labels are, and the files are real PNG / video files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import LoadImage

import medst  # noqa: F401
from medst.data import (
    DEFAULT_COLOURS,
    MedstDataError,
    overlay_frames,
    read_video,
    save_filmstrip_png,
    save_overlay_png,
    write_overlay_video,
)


def test_overlay_frames_paints_only_labels():
    img = np.full((1, 3, 6, 8), 100.0, np.float32)
    img[0, :, 0, 0] = 0.0  # give the percentile scaling a range
    lab = np.zeros((1, 3, 6, 8), np.int64)
    lab[0, :, 2:4, 2:5] = 1
    lab[0, 1, 5, 7] = 2
    out = overlay_frames(img, lab, alpha=1.0)
    assert out.shape == (3, 6, 8, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, 2:4, 2:5], np.broadcast_to(DEFAULT_COLOURS[0], (3, 2, 3, 3)))
    np.testing.assert_array_equal(out[1, 5, 7], DEFAULT_COLOURS[1])
    assert np.all(out[:, 1, 1] == out[:, 1, 1, :1])  # unlabelled pixels stay grey
    half = overlay_frames(img, lab, alpha=0.5)
    assert int(half[0, 2, 2, 2]) == round(0.5 * 255 + 0.5 * DEFAULT_COLOURS[0][2])  # blended


def test_overlay_errors():
    with pytest.raises(MedstDataError, match="do not match"):
        overlay_frames(np.zeros((1, 3, 4, 4)), np.zeros((1, 3, 4, 5)))
    with pytest.raises(MedstDataError, match="C 1 or 3"):
        overlay_frames(np.zeros((2, 3, 4, 4)), np.zeros((3, 4, 4)))
    with pytest.raises(ValueError):
        overlay_frames(np.zeros((3, 4, 4)), np.zeros((3, 4, 4)), alpha=2)


def test_write_overlay_video_from_real_clip(sample, tmp_path):
    img = LoadImage(ensure_channel_first=True, reader="VideoReader", num_frames=8)(sample("video_carphone"))
    lab = (img[:1] > 150).to(torch.uint8)
    path = write_overlay_video(img, lab, tmp_path / "overlay.mp4")
    back, meta = read_video(path)
    assert back.shape == (8, 144, 176, 3)
    assert meta["fps"] == pytest.approx(img.meta["fps"], rel=1e-4)
    lab_np = lab[0].numpy().astype(bool)
    red_gain = back[..., 0].astype(float) - back[..., 2].astype(float)
    assert red_gain[lab_np].mean() > red_gain[~lab_np].mean() + 20  # red label colour where the labels are


def test_save_overlay_png(sample, tmp_path):
    img = LoadImage(ensure_channel_first=True)(sample("head_t1"))
    mask = LoadImage(ensure_channel_first=True)(sample("head_t1_brain_mask"))
    path = save_overlay_png(img, mask, tmp_path / "head.png", title="brain mask")
    from PIL import Image

    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1] > 100
        rgb = np.asarray(im.convert("RGB")).astype(int)
    assert ((rgb[..., 0] - rgb[..., 2]) > 60).mean() > 0.02  # the red fill is visible
    assert [p.name for p in tmp_path.iterdir()] == ["head.png"]


def test_save_overlay_png_errors(tmp_path):
    vol = MetaTensor(torch.zeros(1, 4, 4, 4))
    with pytest.raises(ValueError, match="outside"):
        save_overlay_png(vol, torch.zeros(1, 4, 4, 4), tmp_path / "x.png", slices=(9, 0, 0))
    with pytest.raises(MedstDataError):
        save_overlay_png(torch.zeros(2, 3), torch.zeros(2, 3), tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_save_filmstrip_png_lays_out_rows_of_frames(tmp_path):
    from PIL import Image

    inp = torch.zeros(1, 3, 4, 5)
    inp[0, 1, 2, 3] = 1.0  # frame 1 of row 0: one white pixel
    out = np.full((2, 4, 5), 0.5, np.float32)  # a shorter row, mid grey
    path = save_filmstrip_png([inp, out], tmp_path / "strip.png", gap=1)
    sheet = np.asarray(Image.open(path))
    assert sheet.shape == (2 * 4 + 1, 3 * 5 + 2) and sheet.dtype == np.uint8
    assert sheet[2, 1 * 6 + 3] == 255 and sheet[:4, :5].max() == 0  # the pixel, in row 0 column 1; frame 0 black
    assert (sheet[5:, :5] == 128).all() and (sheet[5:, 6:11] == 128).all()  # row 1: two grey frames
    assert (sheet[5:, 12:] == 96).all() and (sheet[4] == 96).all()  # the missing third frame and the gap: grey
    tight = np.asarray(Image.open(save_filmstrip_png([inp, out], tmp_path / "strip.png", gap=0)))
    assert tight.shape == (8, 15) and tight[1 * 4 + 0, 2 * 5] == 96 and tight[2, 5 + 3] == 255  # no border, no gap
    with pytest.raises(MedstDataError, match="differ in size"):
        save_filmstrip_png([inp, np.zeros((2, 4, 4))], tmp_path / "bad.png")
    with pytest.raises(MedstDataError, match="must be"):
        save_filmstrip_png([np.zeros((4, 5))], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="value_range"):
        save_filmstrip_png([inp], tmp_path / "bad.png", value_range=(1.0, 1.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["strip.png"]  # nothing half-written
