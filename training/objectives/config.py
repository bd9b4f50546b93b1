"""`objectives:` of a pretraining config: extra objectives beside MeDSLIP's five terms, as data.

Each entry names one loss term, its weight, whether it is on, and settings of its family (ASG or MLIP).
A term is logged under its own name beside the MeDSLIP terms and enters `total` times its weight. An
empty list (the default) is MeDSLIP alone, unchanged. Entries are checked when the config is resolved,
so a misspelt term or setting fails before any image is decoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from training.config_io import config_from_dict


@dataclass(frozen=True)
class TermInfo:
    """What a term belongs to and the weight it gets when its entry gives none."""

    family: str  # "asg" or "mlip": the heads and settings it shares with its siblings
    default_weight: float
    summary: str


#: Every selectable term, in logging order. ASG defaults are the release's total
#: L = L_IRA + L_ARSA + 5 L_BCE + L_soft (ASGMVLP_CODE main.py, training_step).
OBJECTIVE_TERMS: dict[str, TermInfo] = {
    "asg_ira": TermInfo("asg", 1.0, "image-report alignment: symmetric InfoNCE of global embeddings"),
    "asg_arsa": TermInfo("asg", 1.0, "anatomical region-sentence alignment (RoIAlign regions)"),
    "asg_tags": TermInfo("asg", 5.0, "image-tag recognition: tag-query decoder, BCE"),
    "asg_soft": TermInfo("asg", 1.0, "soft-label image-report contrast (label-similarity targets)"),
    "mlip_psm": TermInfo("mlip", 1.0, "patch-sentence matching through entropic optimal transport"),
    "mlip_mcl": TermInfo("mlip", 1.0, "masked image-report contrast, low-relevance patches dropped"),
}


@dataclass
class ObjectiveSpec:
    """One `objectives:` entry."""

    name: str  # a key of OBJECTIVE_TERMS
    weight: float | None = None  # multiplies the term in `total`; None: the term's default weight
    enabled: bool = True  # false: the entry is kept in the config but nothing is built or computed
    settings: dict[str, Any] = field(default_factory=dict)  # fields of AsgSettings / MlipSettings


@dataclass(frozen=True)
class AsgSettings:
    """ASG heads and terms; defaults are the release (ASGMVLP_CODE main.py, encoder.py, irl_model.py)."""

    embed_dim: int = 128  # global / local embedding width (release emb_dim)
    hidden_dim: int = 2048  # hidden width of the Linear-BN-ReLU-Linear-BN projection heads
    temperature: float = 0.07  # softmax temperature of every ASG similarity (release)
    tag_layers: int = 4  # pre-norm transformer decoder layers of the tag head (release IRLModel)
    tag_d_model: int = 768  # tag decoder width (release: the ViT/BERT width)
    tag_heads: int = 4  # attention heads of the tag decoder
    tag_ffn_dim: int = 1024  # feed-forward width of the tag decoder
    tag_dropout: float = 0.1  # dropout in the tag decoder and on its outputs
    soft_identity_share: float = 0.8  # soft target = share * I + (1 - share) * label similarity
    arsa_mask_duplicates: bool = False  # true: regions whose text is identical are not each other's negatives

    def __post_init__(self) -> None:
        _positive(self, "embed_dim", "hidden_dim", "temperature", "tag_layers", "tag_d_model", "tag_heads",
                  "tag_ffn_dim")
        if self.tag_d_model % self.tag_heads:
            raise ValueError(f"tag_d_model ({self.tag_d_model}) must be divisible by tag_heads")
        if not 0.0 <= self.soft_identity_share <= 1.0:
            raise ValueError(f"soft_identity_share must be in [0, 1], got {self.soft_identity_share}")
        if not 0.0 <= self.tag_dropout < 1.0:
            raise ValueError(f"tag_dropout must be in [0, 1), got {self.tag_dropout}")


@dataclass(frozen=True)
class MlipSettings:
    """MLIP heads and terms. MLIP has no public code: every default here is this project's choice
    (docs/objectives.md, "MLIP: a reconstruction")."""

    embed_dim: int = 128  # patch / sentence / image / report embedding width
    hidden_dim: int = 2048  # hidden width of the projection heads
    temperature: float = 0.07  # softmax temperature of both contrastive terms
    sinkhorn_epsilon: float = 0.05  # entropic regularisation of the patch-sentence transport (cost 1 - cos)
    sinkhorn_iterations: int = 50  # log-domain Sinkhorn iterations
    mask_ratio: float = 0.5  # fraction of patch tokens dropped from the masked view (lowest relevance)
    same_report_positive: bool = True  # images with the identical report are positives, not negatives

    def __post_init__(self) -> None:
        _positive(self, "embed_dim", "hidden_dim", "temperature", "sinkhorn_epsilon", "sinkhorn_iterations")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {self.mask_ratio}")


def _positive(settings: object, *names: str) -> None:
    for name in names:
        if getattr(settings, name) <= 0:
            raise ValueError(f"{name} must be positive, got {getattr(settings, name)}")


@dataclass(frozen=True)
class ObjectivePlan:
    """The enabled terms with their weights, and the settings of each family that has one enabled."""

    weights: dict[str, float]  # term -> weight, in OBJECTIVE_TERMS order
    asg: AsgSettings | None
    mlip: MlipSettings | None

    def enabled(self, family: str) -> tuple[str, ...]:
        """Enabled terms of one family, in logging order."""
        return tuple(name for name in self.weights if OBJECTIVE_TERMS[name].family == family)


_SETTINGS: dict[str, type[AsgSettings] | type[MlipSettings]] = {"asg": AsgSettings, "mlip": MlipSettings}


def resolve_objectives(specs: Sequence[ObjectiveSpec]) -> ObjectivePlan | None:
    """Validate the entries -> the plan, or None when no entry is enabled (MeDSLIP alone).

    Settings of one family are shared (one set of heads per family), so every enabled entry of a family
    contributes its settings and two entries giving one key different values is an error.
    """
    seen: set[str] = set()
    weights: dict[str, float] = {}
    merged: dict[str, dict[str, Any]] = {}
    for spec in specs:
        if spec.name not in OBJECTIVE_TERMS:
            raise ValueError(f"objectives: unknown term {spec.name!r}; known: {', '.join(OBJECTIVE_TERMS)}")
        if spec.name in seen:
            raise ValueError(f"objectives: {spec.name!r} is listed twice")
        seen.add(spec.name)
        if not spec.enabled:
            continue
        info = OBJECTIVE_TERMS[spec.name]
        weight = info.default_weight if spec.weight is None else spec.weight
        if weight < 0:
            raise ValueError(f"objectives: {spec.name} weight must be >= 0, got {weight}")
        weights[spec.name] = weight
        family = merged.setdefault(info.family, {})
        for key, value in spec.settings.items():
            if key in family and family[key] != value:
                raise ValueError(
                    f"objectives: {info.family} setting {key!r} is {family[key]!r} in one entry and "
                    f"{value!r} in {spec.name}"
                )
            family[key] = value
    if not weights:
        return None
    if "mlip_mcl" in weights and "mlip_psm" not in weights:
        raise ValueError(
            "objectives: mlip_mcl needs mlip_psm enabled: its patch relevance is the patch-sentence "
            "similarity that mlip_psm trains (a small mlip_psm weight keeps it mostly out of the total)"
        )
    ordered = {name: weights[name] for name in OBJECTIVE_TERMS if name in weights}
    settings = {
        family: config_from_dict(_SETTINGS[family], values) for family, values in merged.items()
    }
    asg = settings.get("asg")
    mlip = settings.get("mlip")
    return ObjectivePlan(
        weights=ordered,
        asg=asg if isinstance(asg, AsgSettings) else None,
        mlip=mlip if isinstance(mlip, MlipSettings) else None,
    )
