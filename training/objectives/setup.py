"""Build a run's extra objectives from its `objectives:` entries: text bank, heads, datasets, weights.

`medslip-train` calls `build_objectives`; None means no entry is enabled and the run is MeDSLIP alone,
built exactly as before (same model object, dataset class, forward pass and losses).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from training.data.dataset import PairTransform
from training.data.manifest import ManifestRecord
from training.model.medslip import MeDSLIP
from training.model.segmentation import SegmentationHead
from training.model.text_encoder import TextEncoder
from training.objectives.asg import AsgObjective
from training.objectives.config import ObjectivePlan, ObjectiveSpec, resolve_objectives
from training.objectives.data import ObjectivePretrainDataset
from training.objectives.mlip import MlipObjective
from training.objectives.model import MeDSLIPWithObjectives
from training.objectives.text_bank import REPORT_MAX_TOKENS, Encode, ReportBank

logger = logging.getLogger(__name__)


@dataclass
class ObjectiveRun:
    """What a run with extra objectives needs: the wrapped model, the text bank and the term weights."""

    plan: ObjectivePlan
    bank: ReportBank
    model: MeDSLIPWithObjectives

    @property
    def regions(self) -> bool:
        """Whether samples must carry region boxes (region-sentence alignment is on)."""
        return "asg_arsa" in self.plan.weights

    def dataset(
        self,
        records: Sequence[ManifestRecord],
        transform: PairTransform,
        seed: int = 0,
        structures: Sequence[str] | None = None,
    ) -> ObjectivePretrainDataset:
        """A pretraining dataset whose samples also carry the objectives' inputs."""
        return ObjectivePretrainDataset(
            records, transform, seed, structures, bank=self.bank, regions=self.regions
        )

    def add_terms(
        self, terms: dict[str, torch.Tensor], extra: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Log every enabled term under its name and add weight x term to `total`."""
        missing = set(self.plan.weights) - set(extra)
        if missing:
            raise RuntimeError(f"objective terms not computed: {sorted(missing)}")
        total = terms["total"]
        for name, weight in self.plan.weights.items():
            terms[name] = extra[name]
            total = total + weight * extra[name]
        terms["total"] = total
        return terms


def default_encode(medslip: MeDSLIP) -> Encode:
    """The frozen encoder the query books use, allowed the longer texts reports are."""
    config = medslip.config
    encoder = TextEncoder.from_pretrained(
        config.text_encoder,
        pooling=config.text_pooling,
        normalize=config.text_normalize,
        max_length=REPORT_MAX_TOKENS,
    )
    return encoder.encode


def build_objectives(
    specs: Sequence[ObjectiveSpec],
    medslip: MeDSLIP,
    records: Sequence[ManifestRecord],
    *,
    head: SegmentationHead | None = None,
    batch_size: int = 2,
    encode: Encode | None = None,
) -> ObjectiveRun | None:
    """Resolve the entries; when any is enabled, embed the records' reports once and wrap the model.

    `records`: every record the run reads (train and validation), so every sample finds its report.
    `encode`: texts -> embeddings; default the model's frozen text encoder (`default_encode`).
    """
    plan = resolve_objectives(specs)
    if plan is None:
        return None
    if batch_size < 2:
        raise ValueError("the extra objectives contrast images within a batch: data.batch_size must be >= 2")
    texts = [record.report for record in records if record.report]
    bank = ReportBank.build(texts, encode or default_encode(medslip))
    token_dim = medslip.config.token_dim
    modules: dict[str, nn.Module] = {}
    if plan.asg is not None:
        modules["asg"] = AsgObjective(plan.asg, plan.enabled("asg"), token_dim, bank.tag_queries)
    if plan.mlip is not None:
        text_dim = bank.report_embeddings.shape[1]
        modules["mlip"] = MlipObjective(plan.mlip, plan.enabled("mlip"), token_dim, text_dim)
    model = MeDSLIPWithObjectives(medslip, modules, head)
    linked = int(bank.links.any(dim=(1, 2)).sum())
    logger.info(
        "objectives %s: %d distinct reports (%d name a region), %d distinct sentences",
        ", ".join(f"{name} x{weight:g}" for name, weight in plan.weights.items()),
        len(bank.reports),
        linked,
        bank.sentence_embeddings.shape[0],
    )
    return ObjectiveRun(plan=plan, bank=bank, model=model)
