"""Helpers that medst's bundles and their tests use: handlers, verification."""

from __future__ import annotations

from .handlers import ResumeCheckpoint, atomic_torch_save, unwrap_model

__all__ = ["ResumeCheckpoint", "atomic_torch_save", "unwrap_model"]
