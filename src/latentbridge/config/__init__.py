"""Typed configuration: pydantic sections, per-workflow schemas, YAML presets that compose,
dotted ``key.sub=value`` overrides.

Unknown keys are rejected by name, wrong types are reported with the dotted key that holds
them, and the resolved config is what every run folder saves beside its results.

Layers: :mod:`~latentbridge.config.sections` and :mod:`~latentbridge.config.loading` are plain
pydantic / YAML (imported by data readers and models); :mod:`~latentbridge.config.workflows`
knows every registered model and is loaded on first use of the names below.
"""

from __future__ import annotations

from latentbridge.config.loading import apply_overrides, load_raw, parse_override
from latentbridge.config.sections import (
    AnomalyConfig,
    AudioConfig,
    AugmentConfig,
    BetaConfig,
    FeatureConfig,
    Section,
    TrainConfig,
    VibrationConfig,
)

_WORKFLOW_NAMES = ("Config", "Workflow", "WORKFLOWS", "validate", "load_config", "config_to_dict", "dump_yaml",
                   "transform_spec", "AnomalyWorkflow", "AudioAEWorkflow", "ImageAEWorkflow", "MultimodalWorkflow",
                   "AVDigitsWorkflow", "ClassifierWorkflow", "DiffusionWorkflow", "MLDWorkflow",
                   "SpatialWorkflow")

__all__ = ["apply_overrides", "load_raw", "parse_override", "AnomalyConfig", "AudioConfig", "AugmentConfig",
           "BetaConfig", "FeatureConfig", "Section", "TrainConfig", "VibrationConfig", *_WORKFLOW_NAMES]


def __getattr__(name: str):
    if name in _WORKFLOW_NAMES:
        from latentbridge.config import workflows

        return getattr(workflows, name)
    raise AttributeError(f"module 'latentbridge.config' has no attribute {name!r}")


def __dir__() -> list[str]:  # the names loaded on first use too (a notebook's completion offered none of them)
    return sorted({*globals(), *_WORKFLOW_NAMES})
