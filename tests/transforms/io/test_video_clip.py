"""LoadVideoClip(d): a random clip equals the same frames of the full video, for every key, seeded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import medst  # noqa: F401
from medst.data import MedstDataError, count_frames, read_video, write_video
from medst.transforms import LoadVideoClip, LoadVideoClipd


@pytest.mark.parametrize("num_frames, stride", [(5, 1), (4, 3)])
def test_clip_equals_full_decode(sample, num_frames, stride):
    path = sample("video_carphone")
    full, meta = read_video(path, channels="rgb")
    t = LoadVideoClip(num_frames, stride=stride, channels="rgb", dtype=None)
    t.set_random_state(3)
    clip = t(path)
    s = t._start
    assert tuple(clip.shape) == (3, num_frames, 144, 176)
    np.testing.assert_array_equal(np.moveaxis(clip.numpy(), 0, -1), full[s : s + num_frames * stride : stride])
    assert clip.meta["fps"] == pytest.approx(meta["fps"] / stride)
    assert float(clip.affine[0, 3]) == pytest.approx(s / meta["fps"])
    t2 = LoadVideoClip(num_frames, stride=stride, channels="rgb", dtype=None)
    t2.set_random_state(3)
    assert torch.equal(t2(path), clip)


def test_dict_same_clip_for_image_and_label(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (20, 16, 24, 3), dtype=np.uint8)
    labels = (frames[..., 0] > 128).astype(np.uint8) + np.arange(20, dtype=np.uint8)[:, None, None] * 2
    img = write_video(frames, tmp_path / "img.mkv", fps=10)
    lab = write_video(labels, tmp_path / "lab.mkv", fps=10)
    assert count_frames(lab) == 20  # Matroska stores no count: packets are counted
    t = LoadVideoClipd(["image", "label"], num_frames=6, channels=("rgb", "grey"), dtype=None)
    t.set_random_state(0)
    starts = set()
    for _ in range(4):
        d = t({"image": img, "label": lab})
        s = t.loader._start
        starts.add(s)
        assert tuple(d["image"].shape) == (3, 6, 16, 24) and tuple(d["label"].shape) == (1, 6, 16, 24)
        np.testing.assert_array_equal(d["label"][0].numpy(), labels[s : s + 6])
        np.testing.assert_array_equal(np.moveaxis(d["image"].numpy(), 0, -1), frames[s : s + 6])
    assert len(starts) > 1


def test_clip_errors(tmp_path):
    short = write_video(np.zeros((3, 8, 8), np.uint8), tmp_path / "short.avi", fps=5)
    with pytest.raises(MedstDataError, match="short.avi.*fewer than a clip"):
        LoadVideoClip(5)(short)
    assert LoadVideoClip(5, allow_short=True)(short).shape[1] == 3
    other = write_video(np.zeros((4, 8, 8), np.uint8), tmp_path / "other.avi", fps=5)
    with pytest.raises(MedstDataError, match="differ in length"):
        LoadVideoClipd(["a", "b"], 2)({"a": short, "b": other})
    with pytest.raises(ValueError):
        LoadVideoClip(0)
