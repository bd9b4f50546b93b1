"""MeDSLIP pre-training objectives, as named terms (open_clip style) so each can be logged and weighted.

Terms (defaults reproduce the release, Shef-AIRE/MeDSLIP model_MeDSLIP.py: every weight 1):

* ``existence_pathology`` / ``existence_anatomy``: 2-way cross-entropy of the existence heads, skipping
  entities the report does not mention (label -1). `existence_pathology_balance="batch"` weighs the
  present and the absent mentions of each finding equally within a batch, so a finding that one film in
  sixteen has still pulls on its query as hard as its negatives do (the release averages all mentions).
* ``protocl_pathology`` / ``protocl_anatomy``: prototypical contrastive loss. For every entity present in
  an image, its text projection must pick the *prototype* (mean text embedding of the co-occurring present
  entities of the other stream) out of 1 + 7 candidates; the 7 negatives are other-stream entities that do
  not co-occur with it. The release scores candidates by raw dot product; `similarity="cosine"` with a
  `temperature` is offered as the CLIP-style alternative.
* ``icl``: intra/cross-stream alignment: the dot product of every (anatomy, pathology) pair of decoder
  outputs is a logit for "this pathology is at this anatomy", trained with BCE against the report's
  (51, 75) matrix where it is mentioned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from training.model.medslip import MeDSLIPOutput

Similarity = Literal["dot", "cosine"]
Balance = Literal["none", "batch"]

#: Loss-term names, in the order they are reported.
LOSS_TERMS: tuple[str, ...] = (
    "existence_pathology",
    "existence_anatomy",
    "protocl_pathology",
    "protocl_anatomy",
    "icl",
)


@dataclass(frozen=True)
class LossConfig:
    """Weights and settings of the pre-training objective; defaults are the released recipe."""

    existence_pathology_weight: float = 1.0  # CE of the pathology existence head
    existence_anatomy_weight: float = 1.0  # CE of the anatomy existence head
    protocl_pathology_weight: float = 1.0  # ProtoCL, pathology queries vs anatomy prototypes
    protocl_anatomy_weight: float = 1.0  # ProtoCL, anatomy queries vs pathology prototypes
    icl_weight: float = 1.0  # BCE of anatomy x pathology decoder-output similarities
    protocl_negatives: int = 7  # negatives sampled per present entity (release: 7)
    protocl_similarity: Similarity = "dot"  # "dot" as released, or "cosine" (then divided by temperature)
    temperature: float = 1.0  # divides ProtoCL similarities (the release uses none, i.e. 1.0)
    icl_logit_scale: float = 1.0  # multiplies the ICL dot products (release: 1.0)
    existence_pathology_balance: Balance = "none"  # "batch": present and absent weigh equally per query

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.protocl_negatives < 1:
            raise ValueError(f"protocl_negatives must be >= 1, got {self.protocl_negatives}")
        if self.existence_pathology_balance not in ("none", "batch"):
            raise ValueError(
                "existence_pathology_balance must be 'none' or 'batch', "
                f"got {self.existence_pathology_balance!r}"
            )
        if self.protocl_similarity not in ("dot", "cosine"):
            raise ValueError(f"protocl_similarity must be 'dot' or 'cosine', got {self.protocl_similarity!r}")


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` where `mask`; 0 (with gradient) when nothing is selected, never NaN."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def existence_loss(logits: torch.Tensor, labels: torch.Tensor, balance: Balance = "none") -> torch.Tensor:
    """logits (B, Q, 2), labels (B, Q) in {-1, 0, 1} -> CE over mentioned entries (label != -1).

    "none": the mean over every mentioned entry. "batch": per query, the mean CE of its present entries
    and the mean CE of its absent entries each weigh one half (all of it when only one side occurs in the
    batch); the result is the mean over queries mentioned at all. Rare findings are then not drowned by
    their negatives, which is what ranks them (AUROC) on adult films where most are rare."""
    mentioned = labels >= 0  # (B, Q)
    targets = labels.clamp(min=0).long()  # (B, Q); -1 entries are masked out below
    per_entry = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")  # (B*Q,)
    if balance == "none":
        return _masked_mean(per_entry, mentioned.flatten())
    per_entry = per_entry.view_as(labels).float()  # (B, Q)
    present, absent = (labels == 1).float(), (labels == 0).float()  # (B, Q)
    n_present, n_absent = present.sum(0), absent.sum(0)  # (Q,)
    mean_present = (per_entry * present).sum(0) / n_present.clamp(min=1.0)  # (Q,)
    mean_absent = (per_entry * absent).sum(0) / n_absent.clamp(min=1.0)  # (Q,)
    has_present, has_absent = (n_present > 0).float(), (n_absent > 0).float()  # (Q,)
    sides = (has_present + has_absent).clamp(min=1.0)  # (Q,)
    per_query = (mean_present * has_present + mean_absent * has_absent) / sides  # (Q,)
    return _masked_mean(per_query, (has_present + has_absent) > 0)


def protocl_loss(
    text_proj: torch.Tensor,
    labels: torch.Tensor,
    cooccurrence: torch.Tensor,
    other_book: torch.Tensor,
    *,
    num_negatives: int = 7,
    similarity: Similarity = "dot",
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Prototypical contrastive loss of one stream.

    text_proj (B, Q, T): this stream's projections; labels (B, Q): existence labels (only 1 counts);
    cooccurrence (B, Q, K): 1 where entity q co-occurs (present) with other-stream entity k;
    other_book (K, T): text embeddings of the other stream's entities.
    """
    together = cooccurrence == 1  # (B, Q, K)
    counts = together.sum(dim=-1)  # (B, Q)
    prototypes = together.to(other_book.dtype) @ other_book  # (B, Q, T)
    prototypes = prototypes / counts.clamp(min=1).unsqueeze(-1).to(other_book.dtype)  # (B, Q, T) mean

    # Sample negatives uniformly among non-co-occurring entities: random keys, co-occurring ones pushed
    # below every real key, top-k. A row with fewer than k candidates gets some invalid picks (masked).
    keys = torch.rand(together.shape, generator=generator, device=text_proj.device)  # (B, Q, K) in [0, 1)
    keys = keys.masked_fill(together, -1.0)
    num_negatives = min(num_negatives, keys.shape[-1])
    picked_keys, negative_index = keys.topk(num_negatives, dim=-1)  # (B, Q, N)
    negatives = other_book[negative_index]  # (B, Q, N, T)
    candidates = torch.cat([prototypes.unsqueeze(2), negatives], dim=2)  # (B, Q, 1 + N, T)

    if similarity == "cosine":
        scores = torch.einsum(
            "bqt,bqnt->bqn", F.normalize(text_proj, dim=-1), F.normalize(candidates, dim=-1)
        )  # (B, Q, 1 + N)
    else:
        scores = torch.einsum("bqt,bqnt->bqn", text_proj, candidates)  # (B, Q, 1 + N)
    scores = scores / temperature
    valid = torch.cat([torch.ones_like(picked_keys[..., :1], dtype=torch.bool), picked_keys >= 0], dim=-1)
    scores = scores.masked_fill(~valid, float("-inf"))  # (B, Q, 1 + N)

    targets = torch.zeros(scores.shape[:2], dtype=torch.long, device=scores.device)  # positive is index 0
    per_entry = F.cross_entropy(scores.flatten(0, 1), targets.flatten(), reduction="none")  # (B*Q,)
    selected = (labels == 1) & (counts > 0)  # (B, Q)
    return _masked_mean(per_entry, selected.flatten())


def icl_loss(
    pathology_features: torch.Tensor,
    anatomy_features: torch.Tensor,
    matrix: torch.Tensor,
    logit_scale: float = 1.0,
) -> torch.Tensor:
    """features (B, 75, D) and (B, 51, D), matrix (B, 51, 75) in {-1, 0, 1} -> masked BCE-with-logits."""
    logits = torch.einsum("bad,bpd->bap", anatomy_features, pathology_features) * logit_scale  # (B, 51, 75)
    mentioned = matrix >= 0  # (B, 51, 75)
    targets = matrix.clamp(min=0).to(logits.dtype)  # (B, 51, 75)
    per_pair = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")  # (B, 51, 75)
    return _masked_mean(per_pair, mentioned)


def medslip_losses(
    output: MeDSLIPOutput,
    batch: Mapping[str, torch.Tensor],
    pathology_book: torch.Tensor,
    anatomy_book: torch.Tensor,
    *,
    config: LossConfig | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """All terms plus their weighted sum under "total".

    `output` must come from the built-in books (75 pathology, 51 anatomy queries); `batch` holds
    "matrix" (B, 51, 75), "pathology_labels" (B, 75) and "anatomy_labels" (B, 51), all in {-1, 0, 1}.
    `generator` (on the loss device) makes negative sampling reproducible.
    """
    config = config or LossConfig()
    matrix = batch["matrix"].long()  # (B, 51, 75)
    pathology_labels = batch["pathology_labels"].long()  # (B, 75)
    anatomy_labels = batch["anatomy_labels"].long()  # (B, 51)
    num_pathology, num_anatomy = pathology_book.shape[0], anatomy_book.shape[0]
    queries = (output.pathology_logits.shape[1], output.anatomy_logits.shape[1])
    if tuple(matrix.shape[1:]) != (num_anatomy, num_pathology) or queries != (num_pathology, num_anatomy):
        raise ValueError(
            f"losses need the built-in books: matrix (B, {num_anatomy}, {num_pathology}) and "
            f"({num_pathology}, {num_anatomy}) queries; got matrix {tuple(matrix.shape)}, {queries} queries"
        )
    terms = {
        "existence_pathology": existence_loss(
            output.pathology_logits, pathology_labels, config.existence_pathology_balance
        ),
        "existence_anatomy": existence_loss(output.anatomy_logits, anatomy_labels),
        "protocl_pathology": protocl_loss(
            output.pathology_text_proj,
            pathology_labels,
            matrix.transpose(1, 2),  # (B, 75, 51)
            anatomy_book,
            num_negatives=config.protocl_negatives,
            similarity=config.protocl_similarity,
            temperature=config.temperature,
            generator=generator,
        ),
        "protocl_anatomy": protocl_loss(
            output.anatomy_text_proj,
            anatomy_labels,
            matrix,  # (B, 51, 75)
            pathology_book,
            num_negatives=config.protocl_negatives,
            similarity=config.protocl_similarity,
            temperature=config.temperature,
            generator=generator,
        ),
        "icl": icl_loss(output.pathology_features, output.anatomy_features, matrix, config.icl_logit_scale),
    }
    weights = {
        "existence_pathology": config.existence_pathology_weight,
        "existence_anatomy": config.existence_anatomy_weight,
        "protocl_pathology": config.protocl_pathology_weight,
        "protocl_anatomy": config.protocl_anatomy_weight,
        "icl": config.icl_weight,
    }
    terms["total"] = torch.stack([weights[name] * terms[name] for name in LOSS_TERMS]).sum()
    return terms
