"""Triton Inference Server front door: `export_repository` writes a model repository for bundles.

tritonclient (the `triton` extra) is imported only inside this package, and only where needed.
"""

from __future__ import annotations

from .export import BACKENDS, KINDS, ExportResult, export_repository, validate_config

__all__ = ["BACKENDS", "KINDS", "ExportResult", "export_repository", "validate_config"]
