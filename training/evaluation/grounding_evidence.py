"""Token evidence maps: finding heat maps from a per-token classifier fit on the films' labels alone,
on the frozen trunk. Screened against the served attention maps (`compare_grounding`), not served.

Why: the served maps (`layer_mean_prior`) are the pathology decoder's attention times the body prior, and
the attention adds almost nothing to what the prior localises (docs/training.md). Attention says where a
query looks, not which tokens carry the finding. A classifier that has to explain each film's label from
its strongest tokens has to find the tokens that carry it: multiple-instance learning (the weak
supervision of class activation maps on ChestX-ray14) needs image labels only, which the shared data
has, and never sees a box.

The head scores every token for every pathology query:

    logit(b, q, t) = <A x_t, B e_q> + c_q

with `x_t` the trunk's layer3 token, `e_q` the query's text embedding (the model's pathology book) and
`A`, `B`, `c` learnt. Tying it to the text embeddings gives a map for every query, labelled or not. A
film's logit for a query is the log-sum-exp of its token logits weighted by the body prior
(`pooled_logits`), so only tokens the masks call chest can explain a label; the loss is binary cross-entropy
with each query's positives weighted up to balance its negatives, on the queries a film is labelled for
(`normal` excluded: a film without findings has nothing to point at). Its map is the token probabilities
times the same body prior as the served maps (`evidence_maps`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from app.contract.imaging import PreprocessingSpec, decode_path
from app.contract.vocabulary import PATHOLOGY, is_lateral
from training.data.manifest import ManifestRecord, read_manifest
from training.data.sources.nih import SOURCE as NIH_SOURCE
from training.evaluation.bundle_features import BundleFeatures
from training.export.bundle import load_models
from training.export.graph import shares_trunk, trunk_pass
from training.metrics import auroc
from training.model import SEGMENTATION_STRUCTURES, MeDSLIP, SegmentationModel
from training.model.grounding import PRIOR_STRUCTURES, body_prior, prior_weighted
from training.reports.templates import NIH_FINDINGS

logger = logging.getLogger(__name__)

#: One split's films: layer3 grids (N, C, G, G), body priors (N, 1, G, G), targets (N, Q), sources (N,).
Films = tuple[torch.Tensor, torch.Tensor, np.ndarray, list[str]]
#: The 14 NIH findings as the pathology queries that score them (fibrosis -> tail_abnorm_obs).
NIH_QUERIES: tuple[str, ...] = tuple(entity for entity, _ in NIH_FINDINGS.values())
#: Labels that name no place on the film.
UNGROUNDED = frozenset({"normal"})


@dataclass(frozen=True)
class EvidenceSettings:
    """How the head is shaped and fit (stored beside its weights)."""

    width: int = 64  # shared width of the token and query projections
    sharpness: float = 5.0  # log-sum-exp r: large -> the best token alone, small -> the prior-weighted mean
    epochs: int = 40
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0


class EvidenceHead(nn.Module):
    """grid (B, C, G, G) and query embeddings (Q, T) -> token logits (B, Q, G, G)."""

    def __init__(self, token_dim: int, text_dim: int, num_queries: int, width: int) -> None:
        super().__init__()
        self.tokens = nn.Conv2d(token_dim, width, kernel_size=1)
        self.queries = nn.Linear(text_dim, width, bias=False)
        self.bias = nn.Parameter(torch.zeros(num_queries))

    def forward(self, grid: torch.Tensor, book: torch.Tensor) -> torch.Tensor:
        keys = self.tokens(grid)  # (B, W, G, G)
        queries = self.queries(book)  # (Q, W)
        return torch.einsum("bwhv,qw->bqhv", keys, queries) + self.bias[:, None, None]  # (B, Q, G, G)


def pooled_logits(logits: torch.Tensor, prior: torch.Tensor, sharpness: float) -> torch.Tensor:
    """logits (B, Q, G, G), prior (B, 1, G, G) in [0, 1] -> (B, Q): (1/r) log of the prior-weighted mean of
    exp(r * logit). Tends to the largest logit among the prior's cells as r grows and to their weighted
    mean as r shrinks; cells outside the prior (weight 0) cannot explain a label."""
    weights = prior.flatten(2)  # (B, 1, N)
    log_weights = torch.where(weights > 0, weights.clamp_min(1e-30).log(), torch.full_like(weights, -1e4))
    scaled = sharpness * logits.flatten(2) + log_weights  # (B, Q, N)
    total = weights.sum(dim=-1).clamp_min(1e-30)  # (B, 1)
    return (torch.logsumexp(scaled, dim=-1) - total.log()) / sharpness  # (B, Q)


def evidence_maps(logits: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """(B, Q, G, G) token logits and (B, 1, G, G) body prior -> one distribution per query, as the served
    maps are: token probabilities times the prior, renormalised."""
    return prior_weighted(logits.sigmoid(), prior)


def label_matrix(records: Sequence[ManifestRecord], names: Sequence[str] = PATHOLOGY) -> np.ndarray:
    """(N, Q) float32: 1 present, 0 absent, -1 where a film is not labelled for the query (or the label
    names no place: `UNGROUNDED`)."""
    index = {name: i for i, name in enumerate(names)}
    targets = np.full((len(records), len(names)), -1.0, dtype=np.float32)
    for row, record in enumerate(records):
        for name, value in (record.labels or {}).items():
            if name in index and name not in UNGROUNDED:
                targets[row, index[name]] = float(value)
    return targets


#: image (1, 3, S, S) -> (layer3 grid (1, C, G, G), body prior (1, 1, G, G)) of one film.
FeatureSource = Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor]]


def checkpoint_source(model: MeDSLIP, segmentation: SegmentationModel) -> FeatureSource:
    """The features of PyTorch checkpoints: the trunk once, the prior head's body prior."""
    channels = [SEGMENTATION_STRUCTURES.index(name) for name in PRIOR_STRUCTURES]
    shared = shares_trunk(model, segmentation)

    @torch.no_grad()
    def source(model_input: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        image = torch.from_numpy(model_input.astype(np.float32))  # (1, 3, S, S)
        stages, grid = trunk_pass(model, segmentation, image, shared)
        grid = model.res_features(image) if grid is None else grid  # (1, C, G, G)
        logits = segmentation.prior_logits(stages, (image.shape[-2], image.shape[-1]))  # (1, K, S, S)
        return grid, body_prior(logits, channels, (grid.shape[-2], grid.shape[-1]))

    return source


def trunk_features(source: FeatureSource, spec: PreprocessingSpec, records: Sequence[ManifestRecord]
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Every film's layer3 grid (N, C, G, G), kept in bf16, and body prior (N, 1, G, G)."""
    grids, priors = [], []
    for record in records:
        model_input, _, _ = spec.apply(decode_path(record.image, allow_lateral=True).pixels)
        grid, prior = source(model_input[None])
        grids.append(grid.to(torch.bfloat16))
        priors.append(prior)
    return torch.cat(grids), torch.cat(priors)


def fit_head(grids: torch.Tensor, priors: torch.Tensor, targets: np.ndarray, book: torch.Tensor,
             settings: EvidenceSettings) -> EvidenceHead:
    """Fit the head by multiple-instance learning on (N, C, G, G) grids, (N, 1, G, G) priors and (N, Q)
    targets (-1 = unlabelled); the trunk is never touched."""
    generator = torch.Generator().manual_seed(settings.seed)
    torch.manual_seed(settings.seed)
    head = EvidenceHead(grids.shape[1], book.shape[1], book.shape[0], settings.width)
    labels = torch.from_numpy(targets)  # (N, Q)
    known = labels >= 0
    positives = ((labels == 1) & known).sum(dim=0).float()  # (Q,)
    negatives = ((labels == 0) & known).sum(dim=0).float()
    pos_weight = (negatives / positives.clamp_min(1.0)).clamp(min=1.0)  # (Q,)
    optimiser = torch.optim.AdamW(head.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight, reduction="none")
    for epoch in range(settings.epochs):
        order = torch.randperm(len(labels), generator=generator)
        total = 0.0
        for start in range(0, len(order), settings.batch_size):
            batch = order[start:start + settings.batch_size]
            pooled = pooled_logits(head(grids[batch].float(), book), priors[batch], settings.sharpness)
            mask = known[batch].float()  # (b, Q)
            loss = (loss_fn(pooled, labels[batch].clamp_min(0.0)) * mask).sum() / mask.sum().clamp_min(1.0)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        logger.info("evidence head epoch %d/%d loss %.4f", epoch + 1, settings.epochs, total / len(order))
    return head.eval()


@torch.no_grad()
def pooled_aurocs(head: EvidenceHead, films: Films, book: torch.Tensor, sharpness: float
                  ) -> dict[str, dict[str, float]]:
    """source -> query -> image-level AUROC of the pooled logits, where the source's films hold both
    classes (within one collection: pooled over collections a score can rank sources, not findings),
    plus `nih_mean_14`: a check that the head learnt the labels, not a served score."""
    grids, priors, targets, sources = films
    scores = torch.cat([pooled_logits(head(grids[i:i + 64].float(), book), priors[i:i + 64], sharpness)
                        for i in range(0, len(grids), 64)]).numpy()  # (N, Q)
    figures: dict[str, dict[str, float]] = {}
    for source in sorted(set(sources)):
        rows = np.array([name == source for name in sources])
        for q, name in enumerate(PATHOLOGY[:targets.shape[1]]):
            known = rows & (targets[:, q] >= 0)
            if len(set(targets[known, q].tolist())) == 2:
                figures.setdefault(source, {})[name] = float(auroc(targets[known, q], scores[known, q]))
    nih = figures.get(NIH_SOURCE, {})
    if all(name in nih for name in NIH_QUERIES):
        figures["nih_mean_14"] = {"auroc": float(np.mean([nih[name] for name in NIH_QUERIES]))}
    return figures


def labelled_frontal(records: Sequence[ManifestRecord], split: str) -> list[ManifestRecord]:
    """The frontal films of `split` with labels: what the head is fit and checked on."""
    return [record for record in records
            if record.split == split and record.labels and not is_lateral(record.view)]


def feature_source(args: argparse.Namespace) -> tuple[FeatureSource, PreprocessingSpec, torch.Tensor]:
    """(features, preprocessing, pathology book) of `--bundle` or of `--checkpoint` + `--seg-checkpoint`."""
    if args.bundle is not None:
        features = BundleFeatures(args.bundle)
        return (lambda image: features(image)[:2]), features.bundle.preprocessing, features.book
    if args.checkpoint is None or args.seg_checkpoint is None:
        raise SystemExit("give --bundle, or --checkpoint with the --seg-checkpoint whose prior head "
                         "gives the body prior")
    model, segmentation = load_models(args.checkpoint, args.seg_checkpoint)
    if segmentation is None:
        raise SystemExit("the evidence head needs the segmentation checkpoint's body prior")
    model.eval()
    segmentation.eval()
    return (checkpoint_source(model, segmentation), PreprocessingSpec.trained(model.config.image_size),
            model.pathology_book.detach())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=None, help="an exported bundle: its graph's features")
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--seg-checkpoint", type=Path, default=None,
                        help="its prior head gives the body prior")
    parser.add_argument("--manifest", type=Path, nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True,
                        help="the fitted head (.pt) and its figures (.json)")
    for name, value in asdict(EvidenceSettings()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = EvidenceSettings(**{name: getattr(args, name) for name in asdict(EvidenceSettings())})
    source, spec, book = feature_source(args)
    figures: dict[str, object] = {"settings": asdict(settings)}
    data: dict[str, Films] = {}
    every = [record for path in args.manifest for record in read_manifest(path)]
    for split in ("train", "val"):
        records = labelled_frontal(every, split)
        grids, priors = trunk_features(source, spec, records)
        data[split] = (grids, priors, label_matrix(records), [record.source for record in records])
        logger.info("%s: %d labelled frontal films", split, len(records))
    head = fit_head(*data["train"][:3], book=book, settings=settings)
    pooled = {split: pooled_aurocs(head, films, book, settings.sharpness) for split, films in data.items()}
    figures.update({f"pooled_auroc_{split}": split_figures for split, split_figures in pooled.items()})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": head.state_dict(), "settings": asdict(settings),
                "token_dim": int(data["train"][0].shape[1]), "text_dim": int(book.shape[1])}, args.out)
    args.out.with_suffix(".json").write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    sys.stdout.write(json.dumps({split: found.get("nih_mean_14") for split, found in pooled.items()}) + "\n")
    return 0


def load_head(path: Path) -> tuple[EvidenceHead, EvidenceSettings]:
    """A head written by `main`."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    settings = EvidenceSettings(**saved["settings"])
    num_queries = saved["state_dict"]["bias"].shape[0]
    head = EvidenceHead(saved["token_dim"], saved["text_dim"], num_queries, settings.width)
    head.load_state_dict(saved["state_dict"])
    return head.eval(), settings


if __name__ == "__main__":
    raise SystemExit(main())
