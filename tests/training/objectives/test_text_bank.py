"""The report bank: every distinct text encoded once, sentences linked to regions, tags with uncertain = 0."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch

from app.contract.vocabulary import PATHOLOGY
from training.objectives.regions import REGIONS
from training.objectives.text_bank import MAX_SENTENCES, ReportBank, report_sentences


class CountingEncoder:
    """Embeds a text as a fixed random vector seeded by its characters; counts what it was asked."""

    def __init__(self, dim: int = 8) -> None:
        self.dim = dim
        self.calls: Counter[str] = Counter()

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        self.calls.update(texts)
        seeds = [sum(map(ord, text)) for text in texts]
        rows = [torch.randn(self.dim, generator=torch.Generator().manual_seed(seed)) for seed in seeds]
        return torch.stack(rows) if rows else torch.zeros(0, self.dim)


REPORTS = [
    "The heart is enlarged. Left lower lobe consolidation.",
    "There may be pneumonia. No effusion.",
    "The heart is enlarged. Left lower lobe consolidation.",  # a repeated report
    "The heart is enlarged.",  # a repeated sentence in another report
]


def test_each_distinct_report_and_sentence_is_encoded_once() -> None:
    encoder = CountingEncoder()
    bank = ReportBank.build(REPORTS, encoder)
    assert bank.reports == tuple(dict.fromkeys(REPORTS))
    assert [encoder.calls[text] for text in bank.reports] == [1, 1, 1]
    sentences = (
        "The heart is enlarged", "Left lower lobe consolidation", "There may be pneumonia", "No effusion"
    )
    assert [encoder.calls[s] for s in sentences] == [1, 1, 1, 1]  # "The heart is enlarged" is in two reports
    assert bank.index_of(REPORTS[2]) == bank.index_of(REPORTS[0]) == 0
    assert bank.sentence_embeddings.shape == (4, 8)  # heart, consolidation, pneumonia, effusion
    assert bank.tag_queries.shape == (len(PATHOLOGY), 8)


def test_items_carry_sentences_links_and_tags() -> None:
    bank = ReportBank.build(REPORTS, CountingEncoder())
    first = bank.item(0)
    assert first["sentences"].shape == (MAX_SENTENCES, 8)
    assert first["sentence_valid"].tolist() == [True, True] + [False] * (MAX_SENTENCES - 2)
    assert not first["sentences"][2:].any()
    links = first["region_links"]  # (R, M)
    assert links[REGIONS.index("heart")].nonzero().flatten().tolist() == [0]
    assert links[REGIONS.index("left_lower_zone")].nonzero().flatten().tolist() == [1]
    assert int(links.sum()) == 2
    present = first["tags"].nonzero().flatten().tolist()
    assert present == sorted(PATHOLOGY.index(name) for name in ("cardiomegaly", "consolidation"))
    hedged = bank.item(1)["tags"]  # "may be pneumonia": uncertain counts as 0; "no effusion": 0
    assert hedged[PATHOLOGY.index("pneumonia")] == 0 and hedged.sum() == 0
    assert int(bank.item(1)["report_index"]) == 1


def test_long_reports_keep_the_sentences_with_findings() -> None:
    filler = [f"The patient travelled on day {day}" for day in range(MAX_SENTENCES)]
    text = ". ".join([*filler[:5], "Right upper lobe opacity", *filler[5:]]) + "."
    kept = report_sentences(text)
    assert len(kept) == MAX_SENTENCES
    assert kept == [*filler[:5], "Right upper lobe opacity", *filler[5:-1]]  # the finding stays, in order
    assert report_sentences("...") == ["..."]  # a text without sentences is its own sentence
