"""Data for the ``cardiac_phantom_convlstm4d_segmentation`` bundle: synthetic 4D cardiac phantoms (see
``cardiac_phantom.py``) as 4D NIfTI ``(X, Y, Z, T)`` with ``pixdim[4]`` the time spacing, and 4D label NIfTI
(0 background, 1 RV blood pool, 2 LV myocardium, 3 LV blood pool).

Subjects are seeds: training seeds 0.., validation seeds 10000.., test seeds 20000..; no seed (so no shape, pose,
motion or noise draw) is shared between the splits.

Usage::

    python data_scripts/cardiac_phantom_convlstm4d_segmentation.py --output-dir data/cardiac_phantom
    python data_scripts/cardiac_phantom_convlstm4d_segmentation.py --output-dir /tmp/cp --tiny
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cardiac_phantom import LABELS, make_phantom, save_nifti_4d  # noqa: E402

SEED_BASE = {"training": 0, "validation": 10000, "test": 20000}


def write_sample(path: Path, size: int, num_frames: int, crop: int = 32) -> None:
    """The first test phantom cropped to ``crop``^3 around the LV (end-diastole), stored as scaled int16."""
    import nibabel as nib

    ph = make_phantom(SEED_BASE["test"], size=size, num_frames=num_frames)
    centre = np.round(np.argwhere(ph["label"][..., 0] == 3).mean(0)).astype(int)
    lo = np.clip(centre - crop // 2, 0, size - crop)
    sl = tuple(slice(a, a + crop) for a in lo)
    affine = ph["affine"].copy()
    affine[:3, 3] += affine[:3, :3] @ lo
    path.parent.mkdir(parents=True, exist_ok=True)
    save_nifti_4d(path, ph["image"][sl], affine, ph["time_spacing"])
    img = nib.load(str(path))
    img.set_data_dtype(np.int16)  # nibabel picks scl_slope so the floats survive to ~1e-4
    nib.save(img, str(path))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument("--tiny", action="store_true", help="2 training, 1 validation, 1 test phantom, 32^3 x 6")
    parser.add_argument("--num-train", type=int, default=48)
    parser.add_argument("--num-val", type=int, default=6)
    parser.add_argument("--num-test", type=int, default=12)
    parser.add_argument("--size", type=int, default=48, help="cubic volume edge in voxels")
    parser.add_argument("--num-frames", type=int, default=12, help="frames over one cardiac cycle")
    parser.add_argument("--sample", type=Path, default=None,
                        help="also write one test phantom cropped to 32^3 x T around the heart, int16 (a small sample "
                             "input for the bundle's sample/ folder)")
    args = parser.parse_args(argv)
    if args.tiny:
        args.num_train, args.num_val, args.num_test, args.size, args.num_frames = 2, 1, 1, 32, 6

    out: Path = args.output_dir
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    lists: dict[str, list] = {"training": [], "validation": [], "test": []}
    for split, count in (("training", args.num_train), ("validation", args.num_val), ("test", args.num_test)):
        suffix = "Ts" if split == "test" else "Tr"
        for i in range(count):
            seed = SEED_BASE[split] + i
            ph = make_phantom(seed, size=args.size, num_frames=args.num_frames)
            name = f"phantom_{seed:05d}.nii.gz"
            image, label = f"images{suffix}/{name}", f"labels{suffix}/{name}"
            save_nifti_4d(out / image, ph["image"], ph["affine"], ph["time_spacing"])
            save_nifti_4d(out / label, ph["label"], ph["affine"], ph["time_spacing"])
            lists[split].append({"image": image, "label": label})

    if args.sample is not None:
        write_sample(args.sample, args.size, args.num_frames)
    (out / "dataset.json").write_text(json.dumps({
        "name": "CardiacPhantom4D",
        "description": "Synthetic beating-heart phantoms (LV blood pool + myocardium + RV, breathing motion, bias "
                       "field, Rician noise), 4D NIfTI (X, Y, Z, T) with pixdim[4] = seconds per frame.",
        "tensorImageSize": "4D",
        "modality": {"0": "MR-like"},
        "labels": LABELS,
        "size": args.size,
        "num_frames": args.num_frames,
        "numTraining": len(lists["training"]),
        "numTest": len(lists["test"]),
        **lists,
    }, indent=2))


if __name__ == "__main__":
    main()
