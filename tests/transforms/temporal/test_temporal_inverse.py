"""MONAI's inverse contract for the temporal transforms: Invertd / Compose.inverse over each of them runs, gives back
the input's frame count and frame rate, and leaves no record behind."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, Invertd, InvertibleTransform, NormalizeIntensity, RandFlip, Spacing

from medst.transforms import (
    NormalizeIntensityPerFramed,
    PerFrame,
    PerFramed,
    RandTemporalCrop,
    RandTemporalCropd,
    ResampleFrameRate,
    ResampleFrameRated,
    TemporalPadd,
    TemporalStride,
    TemporalStrided,
)


def video(t=10, c=1, hw=(6, 8), fps=25.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    aff = torch.diag(torch.tensor([1.0 / fps, 1.0, 1.0, 1.0], dtype=torch.float64))
    return MetaTensor(torch.rand(c, t, *hw, generator=g), affine=aff,
                      meta={"fps": fps, "time_spacing": 1.0 / fps, "num_frames": t, "filename_or_obj": "clip.mp4"})


def scan4d(t=4, xyz=(8, 6, 4), pixdim=(1.0, 1.0, 2.0)):
    aff = torch.diag(torch.tensor([*pixdim, 1.0], dtype=torch.float64))
    x = torch.arange(t * int(np.prod(xyz)), dtype=torch.float32).reshape(1, t, *xyz)
    return MetaTensor(x, affine=aff, meta={"time_spacing": 0.05, "num_frames": t})


def invert_pred(pipe, data, key="image"):
    """What a bundle does: a prediction of the transformed image, inverted with Invertd."""
    out = pipe(data)
    pred = MetaTensor(out[key].as_tensor().clone(), meta=dict(out[key].meta))
    d = {"pred": pred, key: out[key]}
    return out, Invertd("pred", transform=pipe, orig_keys=key)(d)["pred"]


def test_only_the_invertible_are_invertible():
    assert not isinstance(NormalizeIntensityPerFramed("image"), InvertibleTransform)
    for t in (ResampleFrameRated("image", 10.0), TemporalStrided("image", 2), PerFramed("image", Spacing((2, 2, 2))),
              RandTemporalCropd("image", 4), TemporalPadd("image", 12)):
        assert isinstance(t, InvertibleTransform)


@pytest.mark.parametrize("fps, mode", [(10.0, "linear"), (10.0, "nearest"), (60.0, "nearest"), (7.0, "linear")])
def test_invertd_restores_frame_rate_and_count(fps, mode):
    x = video(t=11)
    pipe = Compose([ResampleFrameRated("image", fps, mode=mode)])
    out, back = invert_pred(pipe, {"image": x})
    assert out["image"].meta["fps"] == fps and out["image"].shape[1] == round(11 * fps / 25.0)
    assert back.shape == x.shape
    assert back.meta["fps"] == 25.0 and back.meta["time_spacing"] == pytest.approx(0.04, abs=0)
    assert back.meta["num_frames"] == 11
    assert torch.allclose(back.affine, x.affine, atol=1e-12)  # the time column of a video's affine too
    assert back.applied_operations == []
    if fps > 25.0:  # upsampling then nearest back: every original frame comes back exactly
        assert torch.equal(back.as_tensor(), x.as_tensor())


def test_resample_inverse_nearest_picks_the_frame_at_the_same_time():
    x = video(t=10)
    # 25 -> 5 fps keeps frames 0, 5; back at 25 fps, frame j is the kept frame nearest in time to j / 25 s
    t = ResampleFrameRate(5.0, "nearest")
    y = t(x)
    assert y.shape[1] == 2 and torch.equal(y[:, 1].as_tensor(), x[:, 5].as_tensor())
    back = t.inverse(y)
    expected = [0, 0, 0, 5, 5, 5, 5, 5, 5, 5]  # j/5 rounded: 0.0 0.2 0.4 | 0.6 ... 1.8 -> clamp to 1
    for j, k in enumerate(expected):
        assert torch.equal(back[:, j].as_tensor(), x[:, k].as_tensor()), j


def test_temporal_stride_inverse():
    x = video(t=10)
    t = TemporalStride(3, offset=1)  # keeps 1, 4, 7
    y = t(x)
    assert y.meta["fps"] == pytest.approx(25.0 / 3)
    back = t.inverse(y)
    assert back.shape == x.shape and back.meta["fps"] == 25.0 and back.meta["time_spacing"] == 0.04
    assert torch.allclose(back.affine, x.affine, atol=1e-12)
    nearest = [1, 1, 1, 4, 4, 4, 7, 7, 7, 7]  # (j - 1) / 3 rounded half up, clamped
    for j, k in enumerate(nearest):
        assert torch.equal(back[:, j].as_tensor(), x[:, k].as_tensor()), j
    for j in (1, 4, 7):  # the kept frames are exact
        assert torch.equal(back[:, j].as_tensor(), x[:, j].as_tensor())


def test_rand_temporal_crop_pad_inverts_to_original_count():
    x = video(t=5)
    crop = RandTemporalCrop(8, pad=True)
    y = crop(x)
    assert y.shape[1] == 8 and len(y.applied_operations) == 1  # one record, not a pad and a crop
    back = crop.inverse(y)
    assert back.shape == x.shape and back.meta["num_frames"] == 5
    assert torch.equal(back.as_tensor(), x.as_tensor())
    assert back.applied_operations == []  # no stale record


def test_rand_temporal_crop_inverse_pads_back():
    x = video(t=12)
    crop = RandTemporalCropd(["image"], 4)
    crop.set_random_state(3)
    y = crop({"image": x})["image"]
    back = crop.inverse({"image": y})["image"]
    s = crop.cropper._start
    assert back.shape == x.shape and back.applied_operations == []
    assert torch.equal(back[:, s : s + 4].as_tensor(), x[:, s : s + 4].as_tensor())
    assert float(back[:, :s].abs().sum()) == 0.0 and float(back[:, s + 4 :].abs().sum()) == 0.0


def test_temporal_pad_per_key_mode():
    x = video(t=3)
    lab = (x > 0.5).float()
    out = TemporalPadd(["image", "label"], min_frames=5, mode=("edge", "constant"), value=(0.0, 7.0))(
        {"image": x, "label": lab})
    assert torch.equal(out["image"][:, 4].as_tensor(), x[:, 2].as_tensor())  # edge: the last frame repeated
    assert torch.all(out["label"][:, 3:] == 7.0)
    with pytest.raises(ValueError):
        TemporalPadd(["image", "label"], min_frames=5, mode=("edge", "reflect"))


def test_per_frame_spacing_inverse_resamples_back_4d():
    x = scan4d()
    pipe = Compose([PerFramed("image", Spacing(pixdim=(2.0, 2.0, 2.0), mode="bilinear"))])
    out, back = invert_pred(pipe, {"image": x})
    frame = MetaTensor(x[:, 1].as_tensor(), affine=x.affine)
    ref = Spacing(pixdim=(2.0, 2.0, 2.0), mode="bilinear")(frame)  # MONAI's Spacing on one 3D frame
    assert out["image"].shape == (1, 4, *ref.shape[1:])
    assert torch.allclose(out["image"][:, 1].as_tensor(), ref.as_tensor())
    assert back.shape == x.shape
    assert torch.allclose(back.affine, x.affine, atol=1e-6)
    assert back.applied_operations == []
    # Invertd's nearest_interp: each voxel of the inverse is one of the resampled voxels of its own frame
    for t in range(4):
        vals = set(out["image"][0, t].flatten().tolist())
        assert set(back[0, t].flatten().tolist()) <= vals


def test_per_frame_spacing_inverse_video():
    x = video(t=3, hw=(8, 12))
    pf = PerFrame(Spacing(pixdim=(2.0, 2.0), mode="nearest"))
    y = pf(x)
    assert y.shape == (1, 3, 4, 6)
    assert float(y.affine[1, 1]) == 2.0 and float(y.affine[0, 0]) == pytest.approx(0.04)  # time column kept
    back = pf.inverse(y)
    assert back.shape == x.shape and torch.allclose(back.affine, x.affine, atol=1e-6)
    # nearest down then up by 2: voxel (2i, 2j) is exact
    assert torch.equal(back[:, :, ::2, ::2].as_tensor(), x[:, :, ::2, ::2].as_tensor())


def test_compose_inverse_over_every_temporal_transform():
    """The chain of the issue: none of them may raise, and the frame count and rate come back."""
    x = video(t=9, hw=(8, 8))
    pipe = Compose([
        ResampleFrameRated("image", 12.5, mode="linear"),
        TemporalStrided("image", 2),
        NormalizeIntensityPerFramed("image"),
        PerFramed("image", Spacing(pixdim=(2.0, 2.0))),
        RandTemporalCropd("image", 6, pad=True),
    ])
    out, back = invert_pred(pipe, {"image": x})
    assert out["image"].shape == (1, 6, 4, 4)
    assert back.shape == x.shape
    assert back.meta["fps"] == 25.0 and back.meta["num_frames"] == 9
    assert torch.allclose(back.affine, x.affine, atol=1e-6)
    assert back.applied_operations == []
    inv = pipe.inverse(out)["image"]  # Compose.inverse directly, with the image's own records
    assert inv.shape == x.shape and inv.applied_operations == []


@pytest.mark.parametrize("same_random", [True, False])
def test_per_frame_random_invertible_transform_inverts(same_random):
    x = scan4d(t=3, xyz=(8, 8, 6))
    pf = PerFramed("image", RandFlip(prob=1.0, spatial_axis=0), same_random=same_random)
    pf.set_random_state(0)
    pipe = Compose([pf])
    out, back = invert_pred(pipe, {"image": x})
    assert torch.equal(out["image"].flip(2).as_tensor(), x.as_tensor())  # every frame flipped along X
    assert torch.equal(back.as_tensor(), x.as_tensor()) and back.applied_operations == []


def test_per_frame_non_invertible_transform_inverse_is_identity():
    x = scan4d(t=2)
    pipe = Compose([PerFramed("image", NormalizeIntensity())])
    out, back = invert_pred(pipe, {"image": x})
    assert torch.equal(back.as_tensor(), out["image"].as_tensor()) and back.applied_operations == []
