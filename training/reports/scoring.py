"""Per-label precision / recall of the parser against MeSH tags, and the micro-F1 summary.

Counting rule (docs/reports_parser.md): for every scored report and every scoring label, the label is a
reference positive when one of the report's tags maps to it and a reference negative otherwise; the
parser predicts it when any of the label's entities is present (1) in the report's pathology vector.
"normal" is judged at report level: the parser calls a report normal when it predicts no scoring label.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from app.contract.vocabulary import PATHOLOGY
from training.reports.mesh import NORMAL_TAG, MeshMap, reference_labels
from training.reports.parser import PRESENT, ReportLabels

_INDEX = {name: i for i, name in enumerate(PATHOLOGY)}


@dataclass
class Counts:
    """Confusion counts of one label."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def support(self) -> int:
        return self.tp + self.fn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        return f1_score(self.tp, self.fp, self.fn)

    def add(self, predicted: bool, actual: bool) -> None:
        self.tp += predicted and actual
        self.fp += predicted and not actual
        self.fn += actual and not predicted


def f1_score(tp: int, fp: int, fn: int) -> float:
    """F1 from counts; 0 when there is nothing to find and nothing found."""
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


@dataclass
class Score:
    """Result of scoring a report set."""

    per_label: dict[str, Counts]
    n_reports: int = 0
    n_unscored_reports: int = 0
    unmapped_tags: int = 0
    ignored_tags: int = 0
    scored_tags: int = 0
    unmapped_terms: dict[str, int] = field(default_factory=dict)

    def micro(self, include_normal: bool = True) -> Counts:
        """Counts summed over labels (micro average)."""
        total = Counts()
        for name, counts in self.per_label.items():
            if include_normal or name != NORMAL_TAG:
                total.tp += counts.tp
                total.fp += counts.fp
                total.fn += counts.fn
        return total


def predicted_labels(labels: ReportLabels, mesh_map: MeshMap) -> set[str]:
    """Scoring labels whose entities the parser marked present."""
    return {
        name for name, entities in mesh_map.labels.items()
        if any(labels.pathology[_INDEX[e]] == PRESENT for e in entities)
    }


def score_reports(records: Iterable[Mapping[str, object]], parse: Callable[[str], ReportLabels],
                  mesh_map: MeshMap) -> Score:
    """Parse findings + impression of each record and count against its `mesh_major` tags."""
    score = Score(per_label={NORMAL_TAG: Counts(), **{name: Counts() for name in mesh_map.labels}})
    for record in records:
        raw_tags = record.get("mesh_major")
        tags = [str(t) for t in raw_tags] if isinstance(raw_tags, list) else []
        if not tags or set(tags) <= mesh_map.unscored_reports:
            score.n_unscored_reports += 1
            continue
        reference = reference_labels(tags, mesh_map)
        text = " ".join(str(record.get(key) or "") for key in ("findings", "impression"))
        predicted = predicted_labels(parse(text), mesh_map)
        score.n_reports += 1
        score.unmapped_tags += len(reference.unmapped)
        score.ignored_tags += len(reference.ignored)
        score.scored_tags += len(tags) - len(reference.unmapped) - len(reference.ignored)
        for tag in reference.unmapped:
            head = tag.split("/")[0]
            score.unmapped_terms[head] = score.unmapped_terms.get(head, 0) + 1
        for name in mesh_map.labels:
            score.per_label[name].add(name in predicted, name in reference.labels)
        score.per_label[NORMAL_TAG].add(not predicted, reference.is_normal)
    return score


def format_score(score: Score) -> str:
    """The per-label table, then micro-F1 as the LAST line (the CLI's contract)."""
    lines = [f"{'label':<20} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}"]
    ordered = sorted(score.per_label.items(), key=lambda item: -item[1].support)
    for name, counts in ordered:
        lines.append(f"{name:<20} {counts.precision:>9.3f} {counts.recall:>7.3f} {counts.f1:>6.3f} "
                     f"{counts.support:>8d}")
    without_normal = score.micro(include_normal=False)
    lines.append(f"micro-F1 without 'normal': {without_normal.f1:.3f}")
    micro = score.micro()
    lines.append(
        f"micro-F1: {micro.f1:.3f} (n_reports={score.n_reports}, precision={micro.precision:.3f}, "
        f"recall={micro.recall:.3f}, labels={len(score.per_label)}, scored_tags={score.scored_tags}, "
        f"unmapped_tags={score.unmapped_tags}, ignored_tags={score.ignored_tags}, "
        f"unscored_reports={score.n_unscored_reports})"
    )
    return "\n".join(lines)
