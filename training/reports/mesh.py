"""IU / Open-i MeSH tags -> scoring labels, the reference the parser is measured against.

The tags are "major" MeSH terms chosen by indexers: a tag present is a confident positive, an absent
one is only a probable negative. The map (`mesh_map.json`) is data so that each decision is reviewable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from app.contract.vocabulary import PATHOLOGY

MESH_MAP_PATH = Path(__file__).with_name("mesh_map.json")
NORMAL_TAG = "normal"


@dataclass(frozen=True)
class MeshMap:
    """Scoring labels (groups of parser entities) and the tag lookup table."""

    labels: Mapping[str, tuple[str, ...]]
    terms: Mapping[str, str | None]
    unscored_reports: frozenset[str]

    def label_of(self, tag: str) -> tuple[bool, str | None]:
        """(known, label) of one tag: known=False when the map has no entry for it."""
        head, *modifiers = tag.split("/")
        for key in [f"{head}/{m}" for m in modifiers] + [head]:
            if key in self.terms:
                return True, self.terms[key]
        return False, None


@dataclass(frozen=True)
class Reference:
    """Scoring labels of one report from its tags."""

    labels: frozenset[str]
    is_normal: bool
    unmapped: tuple[str, ...]  # tags with no entry (not scored)
    ignored: tuple[str, ...]  # tags explicitly mapped to null


def build_mesh_map(raw: dict[str, Any]) -> MeshMap:
    """Validate the JSON: every label's entities exist and every term names a label."""
    labels = {k: tuple(v) for k, v in raw["labels"].items() if not k.startswith("_")}
    unknown = sorted({e for entities in labels.values() for e in entities} - set(PATHOLOGY))
    if unknown:
        raise ValueError(f"mesh_map.json labels: unknown entities {unknown}")
    terms = {k: v for k, v in raw["terms"].items() if not k.startswith("_")}
    bad = sorted(k for k, v in terms.items() if v is not None and v not in labels)
    if bad:
        raise ValueError(f"mesh_map.json terms map to unknown labels: {bad}")
    return MeshMap(labels=MappingProxyType(labels), terms=MappingProxyType(terms),
                   unscored_reports=frozenset(raw["unscored_reports"]))


@lru_cache(maxsize=1)
def default_mesh_map() -> MeshMap:
    """The packaged map (read once; immutable)."""
    with MESH_MAP_PATH.open(encoding="utf-8") as handle:
        return build_mesh_map(json.load(handle))


def reference_labels(tags: list[str], mesh_map: MeshMap) -> Reference:
    """Scoring labels of a report's `mesh_major` tags."""
    labels: set[str] = set()
    unmapped: list[str] = []
    ignored: list[str] = []
    for tag in tags:
        if tag == NORMAL_TAG:
            continue
        known, label = mesh_map.label_of(tag)
        if not known:
            unmapped.append(tag)
        elif label is None:
            ignored.append(tag)
        else:
            labels.add(label)
    return Reference(frozenset(labels), NORMAL_TAG in tags, tuple(unmapped), tuple(ignored))
