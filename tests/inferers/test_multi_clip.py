"""Several-clip inference for classification: clip positions, softmax averaging, volumes, short inputs, errors."""

from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor

from medst.inferers import MultiClipInferer, clip_starts, multi_clip_inference


@pytest.mark.parametrize(
    "num_frames, clip_frames, num_clips, expected",
    [
        (16, 8, 3, [0, 4, 8]),
        (16, 8, 2, [0, 8]),
        (16, 8, 1, [4]),  # one clip: the centred one
        (10, 4, 4, [0, 2, 4, 6]),
        (8, 8, 3, [0]),  # exactly one clip long
        (5, 8, 3, [0]),  # shorter than a clip
        (9, 8, 5, [0, 1]),  # coinciding starts kept once
    ],
)
def test_clip_starts(num_frames, clip_frames, num_clips, expected):
    starts = clip_starts(num_frames, clip_frames, num_clips)
    assert starts == expected
    assert all(s + min(clip_frames, num_frames) <= num_frames for s in starts)


@pytest.mark.parametrize("args", [(0, 4, 2), (8, 0, 2), (8, 4, 0)])
def test_clip_starts_errors(args):
    with pytest.raises(ValueError, match="must be >= 1"):
        clip_starts(*args)


def _first_frame_net(x: torch.Tensor) -> torch.Tensor:
    """Logits (N, 2) = (value of the clip's first frame, 0): each clip's answer is known exactly."""
    first = x[:, 0, 0].flatten(1)[:, 0]
    return torch.stack([first, torch.zeros_like(first)], 1)


def test_softmax_of_each_clip_is_averaged():
    t = torch.arange(16.0).reshape(1, 1, 16, 1, 1).expand(2, 1, 16, 2, 2).clone()
    t[1] *= -1
    probs = multi_clip_inference(t, _first_frame_net, clip_frames=8, num_clips=3)
    starts = torch.tensor([0.0, 4.0, 8.0])
    for b, sign in enumerate((1.0, -1.0)):
        expected = torch.stack([sign * starts, torch.zeros(3)], 1).softmax(-1).mean(0)
        torch.testing.assert_close(probs[b], expected)
    torch.testing.assert_close(probs.sum(1), torch.ones(2))
    logits = multi_clip_inference(t, _first_frame_net, clip_frames=8, num_clips=3, average="logits")
    torch.testing.assert_close(logits[:, 0], torch.tensor([4.0, -4.0]))  # the mean of 0, 4, 8


def test_volume_slabs_along_an_axis_and_clip_batches():
    x = torch.arange(12.0).reshape(1, 1, 1, 1, 12).expand(1, 1, 3, 3, 12).clone()
    seen = []

    def net(clips):
        seen.append(clips.shape)
        return torch.stack([clips[:, 0, 0, 0, 0], torch.zeros(len(clips))], 1)

    probs = multi_clip_inference(x, net, clip_frames=4, num_clips=3, axis=2, clip_batch_size=2)
    assert seen == [(2, 1, 3, 3, 4), (1, 1, 3, 3, 4)]
    expected = torch.tensor([[0.0, 0.0], [4.0, 0.0], [8.0, 0.0]]).softmax(-1).mean(0)
    torch.testing.assert_close(probs[0], expected)


def test_short_input_wraps_and_metatensor_in():
    x = MetaTensor(torch.arange(3.0).reshape(1, 1, 3, 1, 1))
    seen = []

    def net(clips):
        seen.append(clips[0, 0, :, 0, 0].tolist())
        assert not isinstance(clips, MetaTensor)
        return torch.zeros(len(clips), 4)

    probs = multi_clip_inference(x, net, clip_frames=5, num_clips=3)
    assert seen == [[0.0, 1.0, 2.0, 0.0, 1.0]]
    torch.testing.assert_close(probs, torch.full((1, 4), 0.25))


def test_inferer_class_equals_the_function():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 3))
    x = torch.rand(2, 1, 11, 4, 4)
    torch.testing.assert_close(MultiClipInferer(4, 3)(x, net), multi_clip_inference(x, net, 4, 3))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(average="max"), "average must be one of"),
        (dict(axis=3), "axis must be in"),
        (dict(clip_batch_size=0), "clip_batch_size must be"),
    ],
)
def test_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        multi_clip_inference(torch.rand(1, 1, 8, 4, 4), _first_frame_net, 4, **kwargs)


def test_network_that_does_not_classify():
    with pytest.raises(ValueError, match=r"class logits \(N, K\)"):
        multi_clip_inference(torch.rand(1, 1, 8, 4, 4), lambda x: x, 4)
    with pytest.raises(ValueError, match="clip_frames and num_clips"):
        MultiClipInferer(0)
    with pytest.raises(ValueError, match="average must be"):
        MultiClipInferer(4, average="vote")
