"""Array temporal transforms: shapes, metadata (fps, time_spacing, num_frames, affine), inverses, seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import RandAffine, Spacing

from medst.data import MedstDataError
from medst.transforms import (
    ChannelToTime,
    NormalizeIntensityPerFrame,
    PerFrame,
    RandTemporalCrop,
    RandTemporalFlip,
    ResampleFrameRate,
    TemporalCrop,
    TemporalPad,
    TemporalStride,
    TimeToChannel,
    get_fps,
    time_axis_in_affine,
)

FPS = 10.0


def video(t=12, c=1, h=5, w=6):
    """A video MetaTensor as VideoReader gives it: affine diag(1/fps, 1, 1, 1); frame t holds the value t."""
    x = torch.arange(t, dtype=torch.float32).reshape(1, t, 1, 1).expand(c, t, h, w).clone()
    meta = {"fps": FPS, "time_spacing": 1 / FPS, "num_frames": t, "filename_or_obj": "clip.mp4"}
    return MetaTensor(x, affine=torch.diag(torch.tensor([1 / FPS, 1, 1, 1], dtype=torch.float64)), meta=meta)


def scan4d(t=4, shape=(6, 5, 4)):
    """A 4D scan as MONAI loads it: (T, X, Y, Z) with a 3D affine and time_spacing in the metadata."""
    x = torch.arange(t, dtype=torch.float32).reshape(t, 1, 1, 1).expand(t, *shape).clone()
    aff = torch.tensor([[-2.0, 0, 0, 10], [0, 2, 0, -5], [0, 0, 3, 1], [0, 0, 0, 1]], dtype=torch.float64)
    return MetaTensor(x, affine=aff, meta={"time_spacing": 2.5, "filename_or_obj": "scan.nii.gz"})


@pytest.mark.parametrize("t, shape", [(4, (6, 5, 4)), (1, (3, 3, 3)), (7, (2, 3, 4))])
def test_channel_to_time_round_trip(t, shape):
    x = scan4d(t, shape)
    y = ChannelToTime()(x)
    assert tuple(y.shape) == (1, t, *shape)
    assert y.meta["num_frames"] == t and y.meta["time_spacing"] == 2.5
    assert torch.equal(y.affine, x.affine)  # the affine covers X, Y, Z only
    assert not time_axis_in_affine(y)
    z = TimeToChannel()(y)
    assert torch.equal(z.as_tensor(), x.as_tensor()) and torch.equal(z.affine, x.affine)
    t2c = ChannelToTime()
    inv = t2c.inverse(t2c(x))
    assert torch.equal(inv.as_tensor(), x.as_tensor()) and len(inv.applied_operations) == 0


def test_time_to_channel_refuses_many_channels():
    with pytest.raises(MedstDataError, match="argmax"):
        TimeToChannel()(torch.zeros(3, 4, 2, 2, 2))
    assert TimeToChannel(allow_channels=True)(torch.zeros(3, 4, 2, 2, 2)).shape == (12, 2, 2, 2)
    with pytest.raises(MedstDataError, match="split"):
        ChannelToTime(channels=3)(torch.zeros(4, 2, 2, 2))


@pytest.mark.parametrize(
    "args, t, expected_frames, first",
    [((2, 7), 12, 5, 2), ((-4, None), 12, 4, 8), ((0, None, 3), 12, 3, 0), ((5, 100), 12, 7, 5)],
)
def test_temporal_crop(args, t, expected_frames, first):
    x = video(t)
    y = TemporalCrop(*args)(x)
    assert y.shape[1] == expected_frames and y.meta["num_frames"] == expected_frames
    assert float(y[0, 0, 0, 0]) == first
    assert float(y.affine[0, 3]) == pytest.approx(first / FPS)  # time origin moves with the crop
    assert y.meta["fps"] == FPS
    crop = TemporalCrop(*args)
    back = crop.inverse(crop(x))
    assert back.shape == x.shape and torch.equal(back.affine, x.affine)
    assert torch.equal(back[:, first : first + expected_frames], x[:, first : first + expected_frames])


def test_temporal_crop_errors():
    with pytest.raises(MedstDataError, match="empty crop"):
        TemporalCrop(8, 3)(video())
    with pytest.raises(MedstDataError, match="clip.mp4"):
        TemporalCrop(0, num_frames=20)(video())
    with pytest.raises(MedstDataError, match="time on axis 1"):
        TemporalCrop(0, 2)(torch.zeros(5, 5))
    with pytest.raises(ValueError):
        TemporalCrop(0, 3, 3)


def test_rand_temporal_crop_seeded_and_in_range():
    x = video(30)
    starts = []
    for seed in (0, 0, 1):
        c = RandTemporalCrop(8)
        c.set_random_state(seed)
        y = c(x)
        assert tuple(y.shape) == (1, 8, 5, 6)
        s = int(y[0, 0, 0, 0])
        assert 0 <= s <= 22 and torch.equal(y.as_tensor(), x[:, s : s + 8].as_tensor())
        starts.append(s)
    assert starts[0] == starts[1]
    centre = RandTemporalCrop(8, random_start=False)(x)
    assert int(centre[0, 0, 0, 0]) == 11


def test_rand_temporal_crop_short_clip():
    with pytest.raises(MedstDataError, match="pad=True"):
        RandTemporalCrop(8)(video(5))
    y = RandTemporalCrop(8, pad=True, pad_mode="edge")(video(5))
    assert y.shape[1] == 8 and float(y[0, -1, 0, 0]) == 4


@pytest.mark.parametrize("stride, offset, frames", [(2, 0, 6), (3, 1, 4), (1, 0, 12), (5, 4, 2)])
def test_temporal_stride(stride, offset, frames):
    y = TemporalStride(stride, offset)(video(12))
    assert y.shape[1] == frames and [int(v) for v in y[0, :, 0, 0]] == list(range(offset, 12, stride))
    assert y.meta["fps"] == pytest.approx(FPS / stride)
    assert y.meta["time_spacing"] == pytest.approx(stride / FPS)
    assert float(y.affine[0, 0]) == pytest.approx(stride / FPS)
    assert float(y.affine[0, 3]) == pytest.approx(offset / FPS)


@pytest.mark.parametrize(
    "kwargs, t, expected, first",
    [({"min_frames": 8}, 5, 8, 0), ({"multiple": 4}, 5, 8, 0), ({"multiple": 4}, 8, 8, 0),
     ({"min_frames": 9, "side": "both"}, 5, 9, -2), ({"min_frames": 7, "mode": "edge"}, 5, 7, 0),
     ({"min_frames": 7, "mode": "wrap", "side": "both"}, 5, 7, 4)],
)
def test_temporal_pad(kwargs, t, expected, first):
    x = video(t)
    pad = TemporalPad(**kwargs)
    y = pad(x)
    assert y.shape[1] == expected and y.meta["num_frames"] == expected
    before = (expected - t) // 2 if kwargs.get("side") == "both" else 0
    assert torch.equal(y[:, before : before + t].as_tensor(), x.as_tensor())
    if kwargs.get("mode") == "wrap":
        assert float(y[0, 0, 0, 0]) == first
    if kwargs.get("mode") == "edge":
        assert float(y[0, -1, 0, 0]) == t - 1
    back = pad.inverse(y)
    assert torch.equal(back.as_tensor(), x.as_tensor()) and torch.allclose(back.affine, x.affine)


def test_temporal_pad_errors():
    with pytest.raises(ValueError):
        TemporalPad()
    with pytest.raises(ValueError):
        TemporalPad(4, mode="mirror")


def test_rand_temporal_flip_and_inverse():
    x = video(6)
    f = RandTemporalFlip(prob=1.0)
    y = f(x)
    assert [int(v) for v in y[0, :, 0, 0]] == [5, 4, 3, 2, 1, 0]
    assert float(y.affine[0, 0]) == pytest.approx(-1 / FPS)  # frame 0 now sits at the old last time
    assert float(y.affine[0, 3]) == pytest.approx(5 / FPS)
    back = f.inverse(y)
    assert torch.equal(back.as_tensor(), x.as_tensor()) and torch.allclose(back.affine, x.affine)
    assert torch.equal(RandTemporalFlip(prob=0.0)(x).as_tensor(), x.as_tensor())
    draws = []
    for _ in range(2):
        g = RandTemporalFlip(0.5)
        g.set_random_state(3)
        draws.append([bool(g(x)[0, 0, 0, 0] == 5) for _ in range(8)])
    assert draws[0] == draws[1] and 0 < sum(draws[0]) < 8


@pytest.mark.parametrize("target, mode, frames", [(5.0, "nearest", 6), (20.0, "nearest", 24), (5.0, "linear", 6),
                                                   (20.0, "linear", 24), (3.0, "nearest", 4)])
def test_resample_frame_rate(target, mode, frames):
    x = video(12)
    y = ResampleFrameRate(target, mode=mode)(x)
    assert y.shape[1] == frames and y.meta["num_frames"] == frames
    assert y.meta["fps"] == target and y.meta["time_spacing"] == pytest.approx(1 / target)
    assert float(y.affine[0, 0]) == pytest.approx(1 / target)
    times = np.arange(frames) * FPS / target  # source frame position of each output frame
    vals = y[0, :, 0, 0].numpy()
    if mode == "nearest":
        np.testing.assert_array_equal(vals, np.clip(np.floor(times + 0.5), 0, 11))
    else:
        np.testing.assert_allclose(vals, np.clip(times, 0, 11), atol=1e-6)
    assert get_fps(y) == target


def test_resample_frame_rate_needs_a_rate():
    with pytest.raises(MedstDataError, match="source_fps"):
        ResampleFrameRate(5)(torch.zeros(1, 4, 2, 2))
    assert ResampleFrameRate(5, source_fps=10)(torch.zeros(1, 4, 2, 2)).shape == (1, 2, 2, 2)


def test_resample_4d_keeps_spatial_affine():
    y = ResampleFrameRate(0.8)(ChannelToTime()(scan4d(4)))  # 0.4 fps -> 0.8 fps
    assert y.shape[1] == 8 and y.meta["time_spacing"] == pytest.approx(1.25)
    assert torch.equal(y.affine, scan4d().affine)


@pytest.mark.parametrize("channel_wise, nonzero", [(True, False), (False, False), (True, True)])
def test_normalize_intensity_per_frame(channel_wise, nonzero):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 4, 5, generator=g) * torch.tensor([1.0, 5.0, 50.0]).reshape(1, 3, 1, 1) + 7
    if nonzero:
        x[:, :, 0] = 0
    y = NormalizeIntensityPerFrame(channel_wise=channel_wise, nonzero=nonzero)(x)
    for t in range(3):
        sel = y[:, t] if not nonzero else y[:, t, 1:]
        if channel_wise:
            for c in range(2):
                s = sel[c]
                assert float(s.mean()) == pytest.approx(0, abs=1e-5)
                assert float(s.std(unbiased=False)) == pytest.approx(1, abs=1e-4)
        else:
            assert float(sel.mean()) == pytest.approx(0, abs=1e-5)
    if nonzero:
        assert torch.all(y[:, :, 0] == 0)
    const = NormalizeIntensityPerFrame()(torch.ones(1, 2, 3, 3))
    assert torch.all(const == 0)


def test_per_frame_4d_spacing_matches_3d():
    vol = ChannelToTime()(scan4d(3, (6, 6, 6)))
    out = PerFrame(Spacing(pixdim=(4.0, 4.0, 3.0)))(vol)
    frame = Spacing(pixdim=(4.0, 4.0, 3.0))(vol[:, 1])
    assert out.shape[:2] == (1, 3) and tuple(out.shape[2:]) == tuple(frame.shape[1:])
    assert torch.allclose(out[:, 1], frame.as_tensor())
    assert torch.allclose(out.affine, frame.affine)


def test_per_frame_video_affine_and_same_random():
    x = video(4, c=1, h=8, w=8)
    x = x * 0 + torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))  # the same picture each frame
    out = PerFrame(Spacing(pixdim=(2.0, 2.0)))(x)
    assert tuple(out.shape) == (1, 4, 4, 4)
    assert float(out.affine[0, 0]) == pytest.approx(1 / FPS) and float(out.affine[1, 1]) == pytest.approx(2.0)
    ra = RandAffine(prob=1.0, rotate_range=1.0, padding_mode="zeros")
    ra.set_random_state(0)
    y = PerFrame(ra)(x)
    assert not torch.allclose(y[:, 0], x[:, 0])  # it did rotate
    for t in range(1, 4):
        assert torch.allclose(y[:, t], y[:, 0])  # the same rotation for every frame
    ra.set_random_state(0)
    z = PerFrame(ra, same_random=False)(x)
    assert torch.allclose(z[:, 0], y[:, 0]) and not torch.allclose(z[:, 1], z[:, 0])


def test_per_frame_errors():
    with pytest.raises(ValueError):
        PerFrame("not callable")
    with pytest.raises(MedstDataError, match="different shapes"):
        PerFrame(lambda f: f[:, : int(f.max()) + 1])(torch.arange(3.0).reshape(1, 3, 1, 1).expand(1, 3, 4, 4))
