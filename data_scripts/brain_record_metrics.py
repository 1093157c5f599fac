#!/usr/bin/env python
"""Copy the metrics that a brain bundle's evaluate config measured into its ``configs/metadata.json``.

Reads ``metrics.csv`` written by the evaluate config's ``MetricsSaver`` (``--output_dir``) and stores every value
under ``eval_metrics`` (HD95 also in mm, as voxels x the working spacing), with a note of what data it was measured
on, so that the numbers in the metadata are the measured ones, never typed in.

Usage::

    python data_scripts/brain_record_metrics.py --bundle bundles/brain_extraction_unetr --metrics-dir EVAL_DIR \
        --spacing 2.0 --note "held-out: MNI152 2009a T1 (brain-extracted), reference = its nonzero region" \
        --key heldout_mni152_with_postproc [--replace]
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path

logger = logging.getLogger("brain_record_metrics")


def record(bundle: Path, metrics_dir: Path, spacing: float, note: str, key: str = "", replace: bool = False) -> dict:
    """Merge ``metrics_dir/metrics.csv`` into ``bundle/configs/metadata.json`` (names prefixed ``KEY_``); returns it.

    With ``replace=True`` the previous ``eval_metrics`` are dropped first (to record a new set of runs from scratch).
    """
    values: dict[str, float] = {}
    with open(Path(metrics_dir) / "metrics.csv") as f:
        for row in csv.reader(f, delimiter=","):
            if len(row) >= 2:
                values[row[0]] = round(float(row[1]), 4)
    for name in list(values):
        if name.endswith("_voxels"):
            values[name[: -len("_voxels")] + "_mm"] = round(values[name] * spacing, 2)
    meta_path = Path(bundle) / "configs" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    entry = {**values, "data": note}
    prefix = f"{key}_" if key else ""
    metrics = {} if replace else (meta.get("eval_metrics") or {})
    metrics.update({prefix + k: v for k, v in entry.items()})
    meta["eval_metrics"] = metrics
    meta_path.write_text(json.dumps(meta, indent=4) + "\n")
    logger.info("%s: eval_metrics += %s", meta_path, {prefix + k: v for k, v in entry.items()})
    return meta["eval_metrics"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True, type=Path)
    parser.add_argument("--metrics-dir", required=True, type=Path, help="the evaluate run's output_dir")
    parser.add_argument(
        "--spacing", type=float, default=2.0, help="isotropic spacing (mm) the metrics were computed at"
    )
    parser.add_argument("--note", required=True, help="what the metrics were measured on")
    parser.add_argument("--key", default="", help="prefix of the names in eval_metrics (several test sets)")
    parser.add_argument("--replace", action="store_true", help="drop the previous eval_metrics first")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    record(args.bundle, args.metrics_dir, args.spacing, args.note, args.key, args.replace)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
