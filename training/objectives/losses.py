"""The ASG and MLIP loss terms as pure functions of embeddings, scores and labels.

ASG terms follow the release (ASGMVLP_CODE main.py `ASG.forward`) line by line; where the release would
divide by zero (a batch without any region-sentence pair) the term is 0 instead of NaN. MLIP has no public
code; its terms are this project's reconstruction (docs/objectives.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` where `mask`; 0 (still attached to the graph) when nothing is selected."""
    weights = mask.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp(min=1.0)


# ---------------------------------------------------------------------------------------------- ASG
def image_report_alignment(scores: torch.Tensor) -> torch.Tensor:
    """scores (B, B) = v t^T / tau, pairs on the diagonal -> CE(S, I) + CE(S^T, I).

    The release sums the two directions (`loss_ira = loss_ira0 + loss_ira1`), it does not average them.
    """
    targets = torch.arange(scores.shape[0], device=scores.device)  # (B,)
    return F.cross_entropy(scores, targets) + F.cross_entropy(scores.t(), targets)


def region_sentence_alignment(
    regions: torch.Tensor,
    texts: torch.Tensor,
    valid: torch.Tensor,
    temperature: float,
    same_text: torch.Tensor | None = None,
) -> torch.Tensor:
    """Anatomical region-sentence alignment (ASG L_ARSA).

    regions (B, R, E): RoIAlign-pooled local image embeddings; texts (B, R, E): the text of region r
    (mean of its sentences' normalised embeddings); valid (B, R): region r has a box and a sentence.
    A = r s^T / tau per image; CE over rows + CE over columns with region r's own text as the target.
    As the release's `count_matrix`, valid slots only compete with valid slots and padding with padding
    (so no row is all -inf), and padding rows are left out of the mean. `same_text` (B, R, R), optional:
    pairs whose texts are identical are removed as negatives (not in the release).
    """
    slots = regions.shape[1]
    scores = torch.einsum("bre,bse->brs", regions, texts) / temperature  # (B, R, R)
    allowed = valid.unsqueeze(2) == valid.unsqueeze(1)  # (B, R, R): valid x valid, padding x padding
    if same_text is not None:
        eye = torch.eye(slots, dtype=torch.bool, device=scores.device)
        allowed = allowed & (~same_text | eye)
    scores = scores.masked_fill(~allowed, float("-inf"))
    targets = torch.arange(slots, device=scores.device).expand(scores.shape[0], slots)  # (B, R)
    rows = F.cross_entropy(scores.flatten(0, 1), targets.flatten(), reduction="none")  # (B*R,)
    columns = F.cross_entropy(scores.transpose(1, 2).flatten(0, 1), targets.flatten(), reduction="none")
    return masked_mean(rows, valid.flatten()) + masked_mean(columns, valid.flatten())


def tag_recognition(logits: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
    """logits (B, L), tags (B, L) with 1 = present and 0 = absent, uncertain or unmentioned -> mean BCE."""
    return F.binary_cross_entropy_with_logits(logits, tags.to(logits.dtype))


def soft_targets(tags: torch.Tensor, identity_share: float = 0.8) -> torch.Tensor:
    """tags (B, L) 0/1 -> T (B, B): rows of share * I + (1 - share) * Y_hat Y_hat^T + 1e-6, L1-normalised.

    Y_hat = rows of `tags` scaled to unit length (a row without tags stays zero). All entries are
    positive, so L1 normalisation is division by the row sum, as the release's F.normalize(p=1).
    """
    unit = F.normalize(tags.float(), dim=-1)  # (B, L)
    similarity = unit @ unit.t()  # (B, B) cosine of the tag vectors
    identity = torch.eye(tags.shape[0], device=tags.device)
    target = identity_share * identity + (1.0 - identity_share) * similarity + 1e-6  # (B, B)
    return target / target.sum(dim=-1, keepdim=True)


def _symmetric_kl(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1/2 [KL(T || softmax S) + KL(softmax S || T)], each KL averaged over rows (batchmean)."""
    log_probs = F.log_softmax(scores, dim=-1)  # (B, B)
    forward = F.kl_div(log_probs, target, reduction="batchmean")  # KL(T || P)
    backward = F.kl_div(target.log(), log_probs.exp(), reduction="batchmean")  # KL(P || T)
    return (forward + backward) / 2


def soft_label_contrast(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """ASG L_soft: the symmetric KL of S and of S^T against the same target T, averaged.

    scores (B, B) image-report similarities / tau; target (B, B) from `soft_targets`. The release
    compares S^T with T itself (not T^T); kept.
    """
    return (_symmetric_kl(scores, target) + _symmetric_kl(scores.t(), target)) / 2


# --------------------------------------------------------------------------------------------- MLIP
def sinkhorn(
    cost: torch.Tensor,
    row_mass: torch.Tensor,
    column_mass: torch.Tensor,
    epsilon: float,
    iterations: int,
) -> torch.Tensor:
    """Entropic optimal transport plan, log-domain Sinkhorn.

    cost (..., N, M); row_mass (..., N) and column_mass (..., M) non-negative with equal sums per problem
    (zero mass = padding: its row or column of the plan is 0). Returns the plan (..., N, M) whose column
    sums equal `column_mass` exactly and row sums `row_mass` up to the convergence of `iterations`.
    """
    log_rows = row_mass.log()  # (..., N) -inf where padded
    log_columns = column_mass.log()  # (..., M)
    kernel = -cost / epsilon  # (..., N, M)
    f = torch.zeros_like(log_rows)  # (..., N) potentials / epsilon
    g = torch.zeros_like(log_columns)  # (..., M)
    for _ in range(iterations):
        f = log_rows - torch.logsumexp(kernel + g.unsqueeze(-2), dim=-1)
        g = log_columns - torch.logsumexp(kernel + f.unsqueeze(-1), dim=-2)
    return torch.exp(kernel + f.unsqueeze(-1) + g.unsqueeze(-2))  # (..., N, M)


def transport_scores(
    patches: torch.Tensor,
    sentences: torch.Tensor,
    sentence_valid: torch.Tensor,
    epsilon: float,
    iterations: int,
) -> torch.Tensor:
    """Image-report scores from many-to-many patch-sentence matching.

    patches (B, N, E) and sentences (B, M, E) unit vectors; sentence_valid (B, M). For every image i and
    report j the patch x sentence cosine matrix is matched by entropic OT (cost 1 - cos, uniform mass
    over patches and over the report's sentences); the score is the plan-weighted cosine, i.e. how well
    image i's patches cover report j's sentences. The plan is a constant in the backward pass: by the
    envelope theorem the gradient of the transport cost in the cosines is the plan itself.
    -> (B, B) scores in [-1, 1], image i against report j.
    """
    cosine = torch.einsum("ine,jme->ijnm", patches, sentences)  # (B, B, N, M)
    with torch.no_grad():
        count = sentence_valid.sum(dim=-1, keepdim=True).clamp(min=1).to(cosine.dtype)  # (B, 1)
        column_mass = sentence_valid.to(cosine.dtype) / count  # (B, M) uniform over real sentences
        num_patches = patches.shape[1]
        row_mass = torch.full(cosine.shape[:3], 1.0 / num_patches, dtype=cosine.dtype, device=cosine.device)
        plan = sinkhorn(
            1.0 - cosine.float(),
            row_mass.float(),
            column_mass.float().unsqueeze(0).expand(cosine.shape[0], -1, -1),
            epsilon,
            iterations,
        ).to(cosine.dtype)  # (B, B, N, M), total mass 1 per (i, j)
    return (plan * cosine).sum(dim=(-2, -1))  # (B, B)


def multi_positive_contrast(scores: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """scores (B, B) image x report / tau, positives (B, B) bool with a true diagonal -> mean of the
    image->report and report->image cross-entropies against targets uniform over each row's positives.

    With only the diagonal positive this is the CLIP loss (mean, not sum, of the two directions).
    """
    def direction(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        target = mask.to(logits.dtype) / mask.sum(dim=-1, keepdim=True).clamp(min=1).to(logits.dtype)
        return -(target * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()

    return (direction(scores, positives) + direction(scores.t(), positives.t())) / 2


def patch_relevance(
    patches: torch.Tensor, sentences: torch.Tensor, sentence_valid: torch.Tensor
) -> torch.Tensor:
    """Semantic-integrity estimate: patches (B, N, E), sentences (B, M, E) unit vectors of the image's
    own report -> (B, N) the best cosine of each patch with any real sentence (padding ignored)."""
    cosine = torch.einsum("bne,bme->bnm", patches, sentences)  # (B, N, M)
    cosine = cosine.masked_fill(~sentence_valid.unsqueeze(1), float("-inf"))
    return cosine.max(dim=-1).values  # (B, N)


def keep_relevant(relevance: torch.Tensor, mask_ratio: float) -> torch.Tensor:
    """relevance (B, N) -> keep (B, N) bool: drops the floor(mask_ratio * N) LEAST relevant patches
    (at least one patch is always kept), so what the report describes survives the masking."""
    tokens = relevance.shape[1]
    kept = max(tokens - int(mask_ratio * tokens), 1)
    order = relevance.topk(kept, dim=-1).indices  # (B, kept)
    keep = torch.zeros_like(relevance, dtype=torch.bool)
    return keep.scatter(1, order, True)
