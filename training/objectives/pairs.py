"""`python -m training.objectives.pairs`: how many region-sentence pairs a data set gives ASG's L_ARSA.

For every image with report text: its regions (`region_masks`, before augmentation) and its report's
sentences (`report_sentences`) linked to regions by the parser (`region_links`). Counted per source
and split: images, images with at least one region, sentences, sentences naming a region, region-
sentence pairs (a region the image has x a sentence naming it), ARSA rows (regions of an image with at
least one sentence: the rows of the alignment matrix), the rows among them whose sentences differ from
those of every other row of an image with at least two rows (a row whose text equals another's cannot
be told apart from it: the release's loss keeps such twins as negatives; a lone row has no negative)
and distinct (region, sentence text) pairs.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from training.data.dataset import load_pixels
from training.data.manifest import ManifestRecord
from training.data.sources.registry import load_source
from training.objectives.regions import REGIONS, region_links, region_masks
from training.objectives.text_bank import report_sentences

#: Sources counted by default: every shared data set with images and (real or template) text.
DEFAULT_SOURCES: tuple[tuple[str, str], ...] = (
    ("covid", "{shared}/covid-chestxray"),
    ("jsrt", "{shared}/jsrt-scr"),
    ("kermany", "{shared}/kermany-pediatric"),
    ("nih", "{shared}/nih-cxr14"),
)
FIELDS: tuple[str, ...] = (
    "images",
    "images_with_regions",
    "sentences",
    "sentences_naming_a_region",
    "pairs",
    "arsa_rows",
    "arsa_rows_without_twin",
    "distinct_pairs",
)


def count_pairs(records: Iterable[ManifestRecord]) -> dict[str, int]:
    """The counts of the module docstring over `records` (records without report text are skipped)."""
    counts: Counter[str] = Counter()
    distinct: set[tuple[str, str]] = set()
    for record in records:
        if not record.report:
            continue
        sentences = report_sentences(record.report)
        links = region_links(sentences)  # (R, M)
        counts["images"] += 1
        counts["sentences"] += len(sentences)
        counts["sentences_naming_a_region"] += int(links.any(axis=0).sum())
        if not links.any() or not (record.masks or record.boxes):
            continue
        _, valid = region_masks(record, load_pixels(record.image).shape)  # (R,)
        counts["images_with_regions"] += int(valid.any())
        linked = links & valid[:, None]  # (R, M)
        counts["pairs"] += int(linked.sum())
        rows = linked[linked.any(axis=1)]  # (rows, M) the sentence set of every ARSA row
        counts["arsa_rows"] += len(rows)
        if len(rows) > 1:  # a lone row has no negative at all
            counts["arsa_rows_without_twin"] += sum(int((rows == row).all(axis=1).sum() == 1) for row in rows)
        for region, column in zip(*np.nonzero(linked), strict=True):
            distinct.add((REGIONS[region], sentences[column]))
    counts["distinct_pairs"] = len(distinct)
    return {name: counts[name] for name in FIELDS}


def count_sources(sources: Sequence[tuple[str, str]]) -> list[dict[str, object]]:
    """One row per (source, split) plus a total row, frontal views only (as pretraining reads them)."""
    rows: list[dict[str, object]] = []
    totals: Counter[str] = Counter()
    for kind, path in sources:
        records = load_source(kind, path, frontal_only=True)
        for split in sorted({record.split for record in records}):
            counts = count_pairs(r for r in records if r.split == split)
            totals.update({k: v for k, v in counts.items() if k != "distinct_pairs"})
            rows.append({"source": kind, "split": split, **counts})
    rows.append({"source": "all", "split": "all", **{name: totals[name] for name in FIELDS[:-1]}})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--source", action="append", default=[], metavar="KIND=PATH",
        help="source to count (repeatable; default: covid, jsrt, kermany and nih under {shared})",
    )
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a Markdown table")
    args = parser.parse_args(argv)
    sources = [tuple(item.split("=", 1)) for item in args.source] or list(DEFAULT_SOURCES)
    if any(len(source) != 2 for source in sources):
        parser.error("--source takes KIND=PATH")
    rows = count_sources([(kind, path) for kind, path in sources])
    if args.json:
        for row in rows:
            print(json.dumps(row))  # noqa: T201  (command-line output)
        return 0
    header = ["source", "split", *FIELDS]
    print("| " + " | ".join(header) + " |")  # noqa: T201
    print("|" + "---|" * len(header))  # noqa: T201
    for row in rows:
        print("| " + " | ".join(str(row.get(name, "")) for name in header) + " |")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
