"""Flowcell manifests: three input formats, one validated model."""

from healthomics.manifest.model import FlowcellManifest, ManifestError, Problem, QcSpec, RunDefaults, Sample
from healthomics.manifest.parse import (
    ManifestOptions,
    declared_flowcell_id,
    declares_stages,
    native_schema,
    parse_manifest,
)

__all__ = [
    "FlowcellManifest",
    "ManifestError",
    "ManifestOptions",
    "Problem",
    "QcSpec",
    "RunDefaults",
    "Sample",
    "declared_flowcell_id",
    "declares_stages",
    "native_schema",
    "parse_manifest",
]
