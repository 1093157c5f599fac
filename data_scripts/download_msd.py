#!/usr/bin/env python
"""Download and lay out a Medical Segmentation Decathlon task (Simpson et al. 2019, https://arxiv.org/abs/1902.09063).

For users with internet access; never called by the tests. The tarball comes from the mirror that MONAI's
``DecathlonDataset`` uses, its MD5 is checked, and it is unpacked to ``OUTPUT_DIR/<task>/`` which then holds the
Decathlon layout that medst's train configs read (``imagesTr/``, ``labelsTr/``, ``imagesTs/``, ``dataset.json``).

The Decathlon's own ``dataset.json`` has no validation split; this script keeps it as ``dataset_original.json`` and
writes a ``dataset.json`` whose ``training`` list leaves out a seeded ``--val-fraction`` of the labelled cases, listed
under ``validation`` (the test images have no public labels, so ``test`` lists image paths only).

Example (brain_extraction_unetr's train config on the Decathlon spleen CT task)::

    python data_scripts/download_msd.py --task Task09_Spleen --output-dir ~/data/msd
    cd bundles/brain_extraction_unetr
    python -m monai.bundle run --config_file configs/train.json --dataset_dir ~/data/msd/Task09_Spleen

Task01_BrainTumour has 4 MRI channels and 4 label values: add ``--in_channels 4 --num_classes 4``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import shutil
import sys
import tarfile
import urllib.request
from pathlib import Path

logger = logging.getLogger("download_msd")

BASE_URL = "https://msd-for-monai.s3-us-west-2.amazonaws.com"
#: task -> MD5 of its tarball (the values MONAI's DecathlonDataset checks)
TASKS: dict[str, str] = {
    "Task01_BrainTumour": "240a19d752f0d9e9101544901065d872",
    "Task02_Heart": "06ee59366e1e5124267b774dbd654057",
    "Task03_Liver": "a90ec6c4aa7f6a3d087205e23d4e6397",
    "Task04_Hippocampus": "9d24dba78a72977dbd1d2e110310f31b",
    "Task05_Prostate": "35138f08b1efaef89d7424d2bcc928db",
    "Task06_Lung": "8afd997733c7fc0432f71255ba4e52dc",
    "Task07_Pancreas": "4f7080cfca169fa8066d17ce6eb061e4",
    "Task08_HepaticVessel": "641d79e80ec66453921d997fbf12a29c",
    "Task09_Spleen": "410d4a301da4e5b2f6f86ec3ddba524e",
    "Task10_Colon": "bad7a188931dc2f6acf72b08eb6202d0",
}


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    """MD5 hex digest of a file, read in chunks."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: Path, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` (via a ``.part`` file, renamed when complete), printing progress to stderr."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")
    with urllib.request.urlopen(url) as response, open(part, "wb") as out:  # noqa: S310 (fixed https URL)
        total = int(response.headers.get("Content-Length") or 0)
        done = 0
        while block := response.read(1 << 20):
            out.write(block)
            done += len(block)
            if progress:
                pct = f" {100 * done / total:5.1f}%" if total else ""
                sys.stderr.write(f"\r{dest.name}: {done / 2**20:8.1f} MiB{pct}")
                sys.stderr.flush()
    if progress:
        sys.stderr.write("\n")
    part.replace(dest)
    return dest


def safe_extract(tar_path: Path, output_dir: Path) -> None:
    """Unpack a tarball, refusing members that would land outside ``output_dir``."""
    root = output_dir.resolve()
    with tarfile.open(tar_path) as tar:
        for member in tar.getmembers():
            target = (root / member.name).resolve()
            if root != target and root not in target.parents:
                raise ValueError(f"refusing to extract {member.name!r} outside {root}")
        tar.extractall(root, filter="data") if sys.version_info >= (3, 12) else tar.extractall(root)  # noqa: S202


def add_validation_split(task_dir: Path, val_fraction: float, seed: int) -> Path:
    """Keep the Decathlon's dataset.json as dataset_original.json; write one with a ``validation`` list."""
    original = task_dir / "dataset_original.json"
    if not original.exists():
        shutil.copy(task_dir / "dataset.json", original)
    meta = json.loads(original.read_text())
    cases = list(meta["training"])
    random.Random(seed).shuffle(cases)
    n_val = max(1, round(val_fraction * len(cases))) if val_fraction > 0 else 0
    meta["validation"], meta["training"] = cases[:n_val], cases[n_val:]
    path = task_dir / "dataset.json"
    path.write_text(json.dumps(meta, indent=2))
    logger.info("%s: %d training, %d validation, %d test (no labels)", path, len(meta["training"]),
                len(meta["validation"]), len(meta.get("test", [])))
    return path


def fetch_task(task: str, output_dir: Path, val_fraction: float = 0.2, seed: int = 0, keep_tar: bool = False) -> Path:
    """Download (unless already there), check, unpack and split one Decathlon task; returns its folder."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {sorted(TASKS)}")
    output_dir = Path(output_dir).expanduser()
    task_dir = output_dir / task
    if not (task_dir / "dataset.json").exists():
        tar_path = output_dir / f"{task}.tar"
        if not tar_path.exists() or md5sum(tar_path) != TASKS[task]:
            download(f"{BASE_URL}/{task}.tar", tar_path)
        digest = md5sum(tar_path)
        if digest != TASKS[task]:
            raise ValueError(f"{tar_path}: MD5 {digest} != expected {TASKS[task]}; delete it and try again")
        logger.info("MD5 ok; unpacking %s", tar_path)
        safe_extract(tar_path, output_dir)
        if not keep_tar:
            tar_path.unlink()
    add_validation_split(task_dir, val_fraction, seed)
    return task_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="Task09_Spleen", choices=sorted(TASKS))
    parser.add_argument("--output-dir", required=True, type=Path, help="folder that receives <task>/")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="labelled cases held out for validation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-tar", action="store_true", help="keep the downloaded tarball")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    task_dir = fetch_task(args.task, args.output_dir, args.val_fraction, args.seed, args.keep_tar)
    logger.info("done: %s", task_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
