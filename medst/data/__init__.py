"""Readers, writers, datasets and sample data."""

from __future__ import annotations

from .sample_data import SAMPLE_FILES, package_file, sample_file

__all__ = ["SAMPLE_FILES", "package_file", "sample_file"]
