#!/usr/bin/env python
"""Lay out the MNI152 T1 with grey/white-matter labels, split by hemisphere, for ``brain_tissue_dilated3d``.

Source (nilearn's bundled files, BSD; MNI152 terms permissive): the MNI152 2009a symmetric T1 template
(``sample_file("mni152_t1")``, 197x233x189 at 1 mm, already brain-extracted) and its grey- and white-matter
probability maps (``mni152_gm``, ``mni152_wm``, stored x255).

Labels: the maps are resampled (linear) to the working spacing (``--spacing``, 2 mm by default) and each voxel takes
the argmax of (background = 1 - p_gm - p_wm, p_gm, p_wm): 0 background (CSF and outside), 1 grey matter,
2 white matter.

Split: the affine's first axis runs left to right (+x = patient right, RAS); voxels with world x < 0 (the left
hemisphere) are the training image, voxels with x > 0 (the right hemisphere) the held-out test image; the plane
x = 0 goes to neither. Note: the 2009a *symmetric* template is left-right symmetric by construction, so the held-out
hemisphere is close to a mirror image of the training one; the train config never flips along x, so the network
never sees that mirror image, but this remains a weak test of generalisation (stated in the bundle's README).

``--tiny`` writes 24^3 crops at 4 mm (seconds) for tests.

Usage::

    python data_scripts/brain_tissue_dilated3d.py --output-dir data/brain_tissue_dilated3d [--spacing 2.0] [--tiny]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from brain_common import load_3d, resample_to_spacing, save_nifti, write_dataset_json  # noqa: E402

from medst.data import sample_file  # noqa: E402

logger = logging.getLogger("brain_tissue_dilated3d")


def tissue_labels(gm: np.ndarray, wm: np.ndarray) -> np.ndarray:
    """Label map from grey/white-matter probabilities in [0, 1]: argmax of (1 - gm - wm, gm, wm) -> 0, 1, 2."""
    bg = np.clip(1.0 - gm - wm, 0.0, 1.0)
    return np.argmax(np.stack([bg, gm, wm]), axis=0).astype(np.uint8)


def _crop(data: np.ndarray, affine: np.ndarray, sl: tuple[slice, ...]) -> tuple[np.ndarray, np.ndarray]:
    aff = affine.copy()
    aff[:3, 3] = affine[:3, :3] @ np.array([s.start or 0 for s in sl]) + affine[:3, 3]
    return data[sl], aff


def build(output_dir: Path, spacing: float = 2.0, tiny: bool = False) -> Path:
    """Write the Decathlon layout under ``output_dir``; returns the path of ``dataset.json``."""
    output_dir = Path(output_dir)
    if tiny:
        spacing = 4.0
    t1, aff = load_3d(sample_file("mni152_t1"))
    gm, _ = load_3d(sample_file("mni152_gm"))
    wm, _ = load_3d(sample_file("mni152_wm"))
    t1, new_aff = resample_to_spacing(t1, aff, spacing, order=1)
    gm, _ = resample_to_spacing(gm / 255.0, aff, spacing, order=1)
    wm, _ = resample_to_spacing(wm / 255.0, aff, spacing, order=1)
    label = tissue_labels(gm, wm)

    # world x of each voxel along the first axis (axis-aligned affine)
    if not np.allclose(new_aff[:3, :3], np.diag(np.diag(new_aff[:3, :3]))):
        raise ValueError("expected an axis-aligned affine for the hemisphere split")
    x = new_aff[0, 0] * np.arange(t1.shape[0]) + new_aff[0, 3]
    left = np.nonzero(x < -1e-3)[0]
    right = np.nonzero(x > 1e-3)[0]
    halves = {"left": slice(left.min(), left.max() + 1), "right": slice(right.min(), right.max() + 1)}
    logger.info("x from %.1f to %.1f mm; left voxels %s, right voxels %s", x[0], x[-1], halves["left"], halves["right"])

    entries: dict[str, dict] = {}
    for side, folder in (("left", "Tr"), ("right", "Ts")):
        sl = (halves[side], slice(None), slice(None))
        img, a = _crop(t1, new_aff, sl)
        lab, _ = _crop(label, new_aff, sl)
        if tiny:  # 24^3 around the centre of the hemisphere
            c = [s // 2 for s in img.shape]
            tsl = tuple(slice(max(ci - 12, 0), max(ci - 12, 0) + 24) for ci in c)
            img, a = _crop(img, a, tsl)
            lab = label[sl][tsl]
        name = f"mni152_{side}_hemisphere"
        ip = save_nifti(img.astype(np.float32), a, output_dir / f"images{folder}" / f"{name}.nii.gz")
        lp = save_nifti(lab.astype(np.uint8), a, output_dir / f"labels{folder}" / f"{name}.nii.gz")
        entries[side] = {"image": str(ip.relative_to(output_dir)), "label": str(lp.relative_to(output_dir))}
        counts = np.bincount(lab.ravel(), minlength=3)
        logger.info("%s hemisphere: shape %s, voxels bg/gm/wm %s", side, img.shape, counts.tolist())

    return write_dataset_json(
        output_dir,
        name="MNI152TissueHemispheres",
        description=(
            f"MNI152 2009a symmetric T1 at {spacing:g} mm with GM/WM labels (argmax of background, GM, WM "
            "probabilities). Training: left hemisphere (x < 0); test: right hemisphere (x > 0)."
        ),
        labels={"0": "background", "1": "grey matter", "2": "white matter"},
        training=[entries["left"]],
        validation=[entries["left"]],
        test=[entries["right"]],
        licence="MNI152 2009a via nilearn: BSD (nilearn), MNI terms permissive (Fonov et al. 2011)",
        reference="Fonov et al., NeuroImage 54(1) 2011; Fonov et al., NeuroImage 47 S102 2009",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", required=True, type=Path, help="folder to write (Decathlon layout)")
    parser.add_argument("--spacing", type=float, default=2.0, help="isotropic working spacing in mm (default 2)")
    parser.add_argument("--tiny", action="store_true", help="24^3 crops at 4 mm in seconds, for tests")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    path = build(args.output_dir, spacing=args.spacing, tiny=args.tiny)
    logger.info("done: %s", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
