"""Report text for the extra objectives, encoded once by the frozen sentence encoder and kept.

The query books are encoded once at start and never again; the same holds here: every distinct report
and every distinct sentence of the training and validation records is embedded once when the run is
built (reports repeat: templates, multi-image studies), and samples look their rows up by index. The
encoder is the one the query books use (all-MiniLM-L6-v2, mean pooling, L2-normalised): it exposes one
pooled vector per text, so a sentence is represented by its sentence embedding (the mean of its token
states) rather than by ASG's mean of per-token projections (docs/objectives.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from training.model.text_encoder import load_descriptions, pathology_query_texts
from training.objectives.regions import REGIONS, region_links
from training.reports.lexicon import default_lexicon
from training.reports.parser import ABSENT, PRESENT, parse_report, sentence_mentions
from training.reports.text import split_sentences

#: Sentences kept per report; those in which the parser finds a finding are kept first.
MAX_SENTENCES = 16
#: Word pieces kept per text when encoding reports and sentences (all-MiniLM-L6-v2's own limit is 256).
REPORT_MAX_TOKENS = 256

Encode = Callable[[Sequence[str]], torch.Tensor]  # texts -> (N, T) float32


def report_sentences(text: str, limit: int = MAX_SENTENCES) -> list[str]:
    """The report's sentences in order; beyond `limit`, sentences with a parsed finding are kept first
    (clinical notes put the imaging findings among history and logistics). Never empty."""
    sentences = split_sentences(text) or [text.strip()]
    if len(sentences) <= limit:
        return sentences
    lexicon = default_lexicon()
    ranked = sorted(range(len(sentences)), key=lambda i: (not sentence_mentions(sentences[i], lexicon), i))
    return [sentences[i] for i in sorted(ranked[:limit])]


@dataclass
class ReportBank:
    """Embeddings and labels of every distinct report; the row of a report is its index in `reports`."""

    reports: tuple[str, ...]  # distinct report texts
    report_embeddings: torch.Tensor  # (Nr, T) whole-report embeddings
    sentence_embeddings: torch.Tensor  # (Ns, T) distinct-sentence embeddings
    sentence_index: torch.Tensor  # (Nr, M) int64 rows of sentence_embeddings, -1 = padding
    links: torch.Tensor  # (Nr, R, M) bool: sentence m of the report names region r
    tags: torch.Tensor  # (Nr, L) float 0/1: finding present (uncertain, absent, unmentioned: 0)
    tag_queries: torch.Tensor  # (L, T) embedded description of each pathology entity (the tag queries)
    _rows: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rows = {report: i for i, report in enumerate(self.reports)}

    @classmethod
    def build(cls, texts: Sequence[str], encode: Encode, max_sentences: int = MAX_SENTENCES) -> ReportBank:
        """Parse and embed every distinct text of `texts` once."""
        reports = tuple(dict.fromkeys(texts))
        if not reports:
            raise ValueError("no report text to build the objectives' text from")
        per_report = [report_sentences(text, max_sentences) for text in reports]
        distinct = list(dict.fromkeys(s for sentences in per_report for s in sentences))
        row = {sentence: i for i, sentence in enumerate(distinct)}
        index = torch.full((len(reports), max_sentences), -1, dtype=torch.int64)  # (Nr, M)
        links = torch.zeros(len(reports), len(REGIONS), max_sentences, dtype=torch.bool)  # (Nr, R, M)
        for r, sentences in enumerate(per_report):
            index[r, : len(sentences)] = torch.tensor([row[s] for s in sentences])
            links[r, :, : len(sentences)] = torch.from_numpy(region_links(sentences))
        tags = np.stack([parse_report(text, uncertain_as=ABSENT).pathology == PRESENT for text in reports])
        return cls(
            reports=reports,
            report_embeddings=encode(list(reports)).float(),
            sentence_embeddings=encode(distinct).float(),
            sentence_index=index,
            links=links,
            tags=torch.from_numpy(tags.astype(np.float32)),
            tag_queries=encode(pathology_query_texts(load_descriptions())).float(),
        )

    def index_of(self, text: str) -> int:
        """Row of a report text."""
        return self._rows[text]

    def item(self, row: int) -> dict[str, torch.Tensor]:
        """Per-sample text entries of report `row` (fixed shapes, so the default collate batches them).

        Copies, not views: a view would carry the whole bank's storage to a DataLoader worker's queue."""
        index = self.sentence_index[row]  # (M,)
        valid = index >= 0  # (M,)
        sentences = torch.zeros(index.shape[0], self.sentence_embeddings.shape[1])  # (M, T)
        sentences[valid] = self.sentence_embeddings[index[valid]]
        return {
            "report_index": torch.tensor(row, dtype=torch.int64),  # ()
            "report_embedding": self.report_embeddings[row].clone(),  # (T,)
            "sentences": sentences,  # (M, T) zeros where padded
            "sentence_valid": valid,  # (M,)
            "region_links": self.links[row].clone(),  # (R, M)
            "tags": self.tags[row].clone(),  # (L,)
        }
