"""Helpers that medst's bundles and their tests use: handlers, verification."""

from __future__ import annotations

from .handlers import ClipGradNorm, ConfusionMatrixSaver, ResumeCheckpoint, atomic_torch_save

__all__ = ["ClipGradNorm", "ConfusionMatrixSaver", "ResumeCheckpoint", "atomic_torch_save"]

from .verify import (  # noqa: E402
    REQUIRED_FILES,
    SCHEMA_PATH,
    find_bundles,
    missing_files,
    read_metadata,
    run_workflow,
    verify_bundle_metadata,
)

__all__ += [
    "REQUIRED_FILES",
    "SCHEMA_PATH",
    "find_bundles",
    "missing_files",
    "read_metadata",
    "run_workflow",
    "verify_bundle_metadata",
]
