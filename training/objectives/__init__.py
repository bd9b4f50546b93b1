"""Selectable pretraining objectives beside MeDSLIP's five terms: ASG's and a reconstruction of MLIP's.

Only the light configuration types are imported here (the training config imports them); the heads,
losses and data live in the submodules. Overview and configuration: docs/objectives.md.
"""

from training.objectives.config import (
    OBJECTIVE_TERMS,
    AsgSettings,
    MlipSettings,
    ObjectivePlan,
    ObjectiveSpec,
    resolve_objectives,
)

__all__ = [
    "OBJECTIVE_TERMS",
    "AsgSettings",
    "MlipSettings",
    "ObjectivePlan",
    "ObjectiveSpec",
    "resolve_objectives",
]
