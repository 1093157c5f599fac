"""Every bundle's train and evaluate preprocessing refuses a NaN image and an image and label of different shapes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.bundle import ConfigParser

from medst.data import MedstDataError
from medst.transforms import CheckFinited, CheckShapesd

REPO = Path(__file__).resolve().parents[3]
BUNDLES = sorted(p.parent.parent for p in REPO.glob("bundles/*/configs/train.json"))


def parsed(bundle: Path, *names: str, **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(bundle / "configs" / f"{n}.json") for n in names])
    parser.update({"bundle_root": str(bundle), **overrides})
    return parser


def checks_of(parser: ConfigParser, section: str) -> list:
    pre = parser.get_parsed_content(f"{section}#preprocessing", instantiate=True)
    return [t for t in pre.flatten().transforms if isinstance(t, (CheckFinited, CheckShapesd))]


def _classifies(bundle: Path) -> bool:
    """A classification bundle: its label is a class index, not an image (no shapes to compare)."""
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    return meta["network_data_format"]["outputs"]["pred"].get("format") == "classification"


def test_there_are_six_bundles():
    assert len(BUNDLES) == 6 and sum(map(_classifies, BUNDLES)) == 1


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
@pytest.mark.parametrize("names, section", [(("train",), "train"), (("train", "evaluate"), "validate")])
def test_preprocessing_checks_finite_and_shapes(bundle, names, section, tmp_path):
    # the dataset is read lazily by the config's expressions: point it at an empty dataset.json
    (tmp_path / "dataset.json").write_text('{"training": [], "validation": [], "test": []}')
    checks = checks_of(parsed(bundle, *names, dataset_dir=str(tmp_path)), section)
    if _classifies(bundle):  # a class label: only the image is checked
        assert [type(c).__name__ for c in checks] == ["CheckFinited"] and tuple(checks[0].keys) == ("image",)
        return
    assert [type(c).__name__ for c in checks] == ["CheckFinited", "CheckShapesd"]
    finite, shapes = checks
    assert tuple(finite.keys) == ("image",) and tuple(shapes.keys) == ("image", "label")


def _nifti(path: Path, arr: np.ndarray) -> str:
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(path))
    return str(path)


@pytest.mark.parametrize("problem", ["shape", "nan"])
def test_brain_bundle_training_refuses_bad_pairs_naming_the_file(problem, tmp_path):
    bundle = REPO / "bundles" / "brain_extraction_unetr"
    img = np.random.default_rng(0).random((12, 12, 12)).astype(np.float32)
    lab = (img > 0.5).astype(np.uint8)
    if problem == "shape":
        lab = lab[:, :, :10]
    else:
        img[3, 4, 5] = np.nan
    item = {"image": _nifti(tmp_path / "head.nii.gz", img), "label": _nifti(tmp_path / "mask.nii.gz", lab)}
    (tmp_path / "dataset.json").write_text('{"training": []}')
    pre = parsed(bundle, "train", dataset_dir=str(tmp_path)).get_parsed_content("validate#preprocessing")
    expected = r"mask\.nii\.gz" if problem == "shape" else r"head\.nii\.gz.*NaN"
    with pytest.raises(Exception) as info:
        pre(item)
    # MONAI wraps a transform's error in its own RuntimeError; the medst error is the cause
    chain, e = [], info.value
    while e is not None:
        chain.append(e)
        e = e.__cause__ or e.__context__
    ours = [c for c in chain if isinstance(c, MedstDataError)]
    assert ours and re.search(expected, str(ours[0])), [str(c) for c in chain]
    fixed = np.nan_to_num(img)
    good = {"image": _nifti(tmp_path / "ok.nii.gz", fixed),
            "label": _nifti(tmp_path / "okl.nii.gz", (fixed > 0.5).astype(np.uint8))}
    out = pre(good)
    assert out["image"].shape[1:] == out["label"].shape[1:]
