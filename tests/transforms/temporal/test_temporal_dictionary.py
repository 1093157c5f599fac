"""Dictionary temporal transforms give what their array transform gives, keep keys aligned, invert, and seed."""

from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, Invertd, RandAffine

from medst.transforms import (
    ChannelToTime,
    ChannelToTimed,
    NormalizeIntensityPerFrame,
    NormalizeIntensityPerFramed,
    PerFrame,
    PerFramed,
    RandTemporalCrop,
    RandTemporalCropd,
    RandTemporalFlip,
    RandTemporalFlipd,
    ResampleFrameRate,
    ResampleFrameRated,
    TemporalCrop,
    TemporalCropd,
    TemporalPad,
    TemporalPadd,
    TemporalStride,
    TemporalStrided,
    TimeToChannel,
    TimeToChanneld,
)


def clip(t=10, c=1, hw=(4, 5), seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(c, t, *hw, generator=g)
    aff = torch.diag(torch.tensor([0.04, 1, 1, 1], dtype=torch.float64))
    return MetaTensor(x, affine=aff, meta={"fps": 25.0, "time_spacing": 0.04, "num_frames": t})


PAIRS = [
    (TemporalCrop(2, 7), TemporalCropd(["img", "lab"], 2, 7), (1, 10, 4, 5)),
    (TemporalStride(3, 1), TemporalStrided(["img", "lab"], 3, 1), (1, 10, 4, 5)),
    (TemporalPad(multiple=4, mode="edge"), TemporalPadd(["img", "lab"], multiple=4, mode="edge"), (1, 10, 4, 5)),
    (ResampleFrameRate(10.0), ResampleFrameRated(["img", "lab"], 10.0), (1, 10, 4, 5)),
    (NormalizeIntensityPerFrame(), NormalizeIntensityPerFramed(["img", "lab"]), (2, 10, 4, 5)),
    (ChannelToTime(), ChannelToTimed(["img", "lab"]), (6, 3, 4, 5)),
    (TimeToChannel(), TimeToChanneld(["img", "lab"]), (1, 6, 3, 4, 5)),
]


@pytest.mark.parametrize("array_t, dict_t, shape", PAIRS)
def test_dict_equals_array(array_t, dict_t, shape):
    x = MetaTensor(torch.rand(*shape, generator=torch.Generator().manual_seed(1)), meta={"fps": 25.0})
    expected = array_t(x)
    out = dict_t({"img": x, "lab": x.clone(), "other": 5})
    assert out["other"] == 5
    for key in ("img", "lab"):
        assert out[key].shape == expected.shape
        assert torch.allclose(out[key].as_tensor(), expected.as_tensor())
        assert out[key].meta.get("fps") == expected.meta.get("fps")


@pytest.mark.parametrize("array_t, dict_t", [(TemporalCrop(2, 7), TemporalCropd("img", 2, 7)),
                                             (TemporalPad(16), TemporalPadd("img", 16)),
                                             (ChannelToTime(), ChannelToTimed("img"))])
def test_dict_inverse(array_t, dict_t):
    x = clip()
    out = dict_t({"img": x})
    back = dict_t.inverse(out)["img"]
    ref = array_t.inverse(array_t(x))
    assert back.shape == x.shape == ref.shape
    assert torch.allclose(back.as_tensor(), ref.as_tensor())


def test_rand_crop_dict_keeps_keys_aligned_and_seeded():
    img = clip(30)
    lab = (img > 0.5).float()
    results = []
    for _ in range(2):
        t = RandTemporalCropd(["img", "lab"], num_frames=6)
        t.set_random_state(7)
        results.append([t({"img": img, "lab": lab}) for _ in range(3)])
    for a, b in zip(*results):
        assert torch.equal(a["img"].as_tensor(), b["img"].as_tensor())
        assert torch.equal((a["img"] > 0.5).float().as_tensor(), a["lab"].as_tensor())  # same window for both keys
    arr = RandTemporalCrop(6)
    arr.set_random_state(7)
    assert torch.equal(arr(img).as_tensor(), results[0][0]["img"].as_tensor())  # the seed reaches the inner crop
    inv = RandTemporalCropd(["img", "lab"], num_frames=6)
    d = inv({"img": img, "lab": lab})
    assert inv.inverse(d)["img"].shape == img.shape


def test_rand_flip_dict_and_invertd():
    img = clip(5)
    flip = RandTemporalFlipd(["img", "lab"], prob=1.0)
    pipe = Compose([flip])
    out = pipe({"img": img, "lab": img.clone()})
    assert torch.equal(out["img"][:, 0], img[:, -1]) and torch.equal(out["lab"][:, 0], img[:, -1])
    pred = {"pred": out["lab"].clone(), "img": out["img"]}
    back = Invertd("pred", transform=pipe, orig_keys="img")(pred)
    assert torch.equal(back["pred"].as_tensor(), img.as_tensor())
    a, b = RandTemporalFlip(0.5), RandTemporalFlipd("img", 0.5)
    a.set_random_state(11)
    b.set_random_state(11)
    for _ in range(6):
        assert torch.equal(a(img).as_tensor(), b({"img": img})["img"].as_tensor())


def test_resample_dict_modes_per_key():
    img = clip(10)
    out = ResampleFrameRated(["img", "lab"], 20.0, mode=("linear", "nearest"))({"img": img, "lab": img.clone()})
    assert out["img"].shape[1] == out["lab"].shape[1] == 8
    assert not torch.equal(out["img"].as_tensor(), out["lab"].as_tensor())
    with pytest.raises(ValueError):
        ResampleFrameRated(["img", "lab"], 20.0, mode=("linear",))


def test_per_frame_dict_same_draw_for_all_keys():
    img = clip(3, hw=(8, 8))
    t = PerFramed(["img", "lab"], RandAffine(prob=1.0, rotate_range=1.0, padding_mode="zeros"))
    t.set_random_state(5)
    out = t({"img": img, "lab": img.clone()})
    assert torch.allclose(out["img"].as_tensor(), out["lab"].as_tensor())
    ref = PerFrame(RandAffine(prob=1.0, rotate_range=1.0, padding_mode="zeros"))
    ref.set_random_state(5)
    assert torch.allclose(ref(img).as_tensor(), out["img"].as_tensor())
    assert not torch.allclose(out["img"].as_tensor(), img.as_tensor())
