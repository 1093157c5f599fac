"""Checks that a medst bundle passes, mirroring the MONAI model zoo's own CI (used by tests/bundle/)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monai.bundle import ConfigWorkflow, verify_metadata

__all__ = [
    "REQUIRED_FILES",
    "SCHEMA_PATH",
    "find_bundles",
    "missing_files",
    "read_metadata",
    "run_workflow",
    "verify_bundle_metadata",
]

logger = logging.getLogger(__name__)

#: files every bundle must have (the model zoo's layout)
REQUIRED_FILES = (
    "configs/metadata.json",
    "configs/inference.json",
    "configs/train.json",
    "configs/evaluate.json",
    "configs/multi_gpu_train.json",
    "configs/logging.conf",
    "models/model.pt",
    "docs/README.md",
    "LICENSE",
)

#: the metadata schema kept in the repository, so that validation needs no network
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "bundles" / "meta_schema.json"


def find_bundles(root: str | Path) -> list[Path]:
    """The bundle folders under ``root``: those with ``configs/metadata.json``, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "configs" / "metadata.json").is_file())


def missing_files(bundle_dir: str | Path) -> list[str]:
    """The files of :data:`REQUIRED_FILES` that ``bundle_dir`` lacks."""
    return [f for f in REQUIRED_FILES if not (Path(bundle_dir) / f).is_file()]


def read_metadata(bundle_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(bundle_dir) / "configs" / "metadata.json").read_text())


def verify_bundle_metadata(bundle_dir: str | Path, schema: str | Path = SCHEMA_PATH) -> None:
    """Validate ``configs/metadata.json`` against ``schema`` (offline) and check its version is in the changelog.

    Raises:
        ValueError: the metadata does not validate, or its version has no changelog entry.
    """
    meta_file = Path(bundle_dir) / "configs" / "metadata.json"
    verify_metadata(meta_file=str(meta_file), filepath=str(schema))
    meta = read_metadata(bundle_dir)
    if meta["version"] not in meta["changelog"]:
        raise ValueError(f"{meta_file}: version {meta['version']} has no entry in the changelog.")


def run_workflow(
    config_file: str | Path | Sequence[str | Path], workflow_type: str, logging_file: str | bool = False, **override: Any
) -> ConfigWorkflow:
    """Run a bundle config through ``ConfigWorkflow``: initialize, check_properties, run, finalize.

    Raises:
        ValueError: the config lacks a property that MONAI requires of a ``workflow_type`` workflow.
    """
    files = [str(f) for f in (config_file if isinstance(config_file, (list, tuple)) else [config_file])]
    workflow = ConfigWorkflow(
        config_file=files if len(files) > 1 else files[0],
        meta_file=str(Path(files[0]).parent / "metadata.json"),
        logging_file=logging_file,
        workflow_type=workflow_type,
        **override,
    )
    workflow.initialize()
    missing = workflow.check_properties()
    if missing:
        raise ValueError(f"{files}: the {workflow_type} workflow lacks the required properties {missing}")
    workflow.run()
    workflow.finalize()
    return workflow
