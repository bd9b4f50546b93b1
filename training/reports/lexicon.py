"""The parser's vocabulary, loaded from `lexicon.json` and checked against the entity lists.

Kept as data (not code) so that a radiologist can review and extend the word lists without reading the
parser; validated at load time so that a typo in an entity name fails loudly instead of silently
producing a label that no query ever sees.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from app.contract.vocabulary import ANATOMY, PATHOLOGY

LEXICON_PATH = Path(__file__).with_name("lexicon.json")

Phrase = tuple[str, ...]

#: Report-vocabulary entities (the first queries: normal, clear, sharp, ..., stable): words that state a
#: normal or unchanged finding. They end negation scopes ("no effusion, lungs clear") and are not negated
#: by them. "free" is not one of them: in "no free air" it is an adjective inside the negated phrase.
VOCABULARY_ENTITIES: frozenset[str] = frozenset(PATHOLOGY[:7])


@dataclass(frozen=True)
class Region:
    """A lateral anatomy ("lower lobe"): which anatomies each side word selects."""

    name: str
    left: tuple[str, ...]
    right: tuple[str, ...]
    both: tuple[str, ...]
    none: tuple[str, ...]

    def for_side(self, side: str | None) -> tuple[str, ...]:
        """Anatomies for `side` in {"left", "right", "both", None}."""
        if side is None:
            return self.none
        return {"left": self.left, "right": self.right, "both": self.both}[side]


@dataclass(frozen=True)
class Compound:
    """A finding word re-read from its neighbours ("enlarged" near "heart" -> cardiomegaly)."""

    lemma: Phrase
    near: frozenset[str]
    near_any_finding: bool
    where: str  # "before" | "after" | "any": where the neighbour must be
    window: int
    becomes: str | None  # None: the word only modifies its neighbour and is dropped


@dataclass(frozen=True)
class Lexicon:
    """All phrase tables, keyed by tuples of lemmas (read-only views: the lexicon is shared)."""

    lemmas: Mapping[str, str]
    findings: Mapping[Phrase, str | None]
    regions: Mapping[str, Region]
    region_phrases: Mapping[Phrase, str]
    anatomy: Mapping[Phrase, tuple[str, ...]]
    #: region phrases (value: region name) and fixed anatomy phrases (value: anatomies) in one table, so
    #: that the longest match decides between "right atrium" (fixed) and "right" + "atrium".
    places: Mapping[Phrase, str | tuple[str, ...]]
    sides: Mapping[str, str]
    side_glue: frozenset[str]
    default_anatomy: Mapping[str, tuple[str, ...]]
    default_region: Mapping[str, str]
    triggers: Mapping[Phrase, str]
    breaks: frozenset[Phrase]
    compounds: tuple[Compound, ...]
    known_words: frozenset[str]


def _phrase(text: str) -> Phrase:
    return tuple(text.split())


def _public(table: dict[str, Any]) -> dict[str, Any]:
    """Drop the '_doc' comment keys."""
    return {key: value for key, value in table.items() if not key.startswith("_")}


def _check(names: list[str], allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise ValueError(f"lexicon.json {where}: unknown entity names {unknown}")


def build_lexicon(raw: dict[str, Any]) -> Lexicon:
    """Validate the JSON tables and index them by lemma tuples."""
    findings = {_phrase(k): v for k, v in _public(raw["findings"]).items()}
    _check([v for v in findings.values() if v is not None], PATHOLOGY, "findings")

    regions: dict[str, Region] = {}
    region_phrases: dict[Phrase, str] = {}
    for name, spec in _public(raw["regions"]).items():
        region = Region(name, *(tuple(spec[side]) for side in ("left", "right", "both", "none")))
        _check([*region.left, *region.right, *region.both, *region.none], ANATOMY, f"regions.{name}")
        regions[name] = region
        for text in spec["phrases"]:
            region_phrases[_phrase(text)] = name

    anatomy = {_phrase(k): tuple(v) for k, v in _public(raw["anatomy"]).items()}
    _check([a for names in anatomy.values() for a in names], ANATOMY, "anatomy")

    default_anatomy: dict[str, tuple[str, ...]] = {}
    default_region: dict[str, str] = {}
    for finding, spec in _public(raw["defaults"]).items():
        _check([finding], PATHOLOGY, "defaults")
        if "anatomy" in spec:
            _check(spec["anatomy"], ANATOMY, f"defaults.{finding}")
            default_anatomy[finding] = tuple(spec["anatomy"])
        if "region" in spec:
            if spec["region"] not in regions:
                raise ValueError(f"lexicon.json defaults.{finding}: unknown region {spec['region']!r}")
            default_region[finding] = spec["region"]

    triggers: dict[Phrase, str] = {}
    for kind, phrases in _public(raw["triggers"]).items():
        for text in phrases:
            triggers[_phrase(text)] = kind

    compounds: list[Compound] = []
    for rule in raw["compounds"]["rules"]:
        if rule["becomes"] is not None:
            _check([rule["becomes"]], PATHOLOGY, "compounds")
        if rule["where"] not in ("before", "after", "any"):
            raise ValueError(f"lexicon.json compounds: bad 'where' {rule['where']!r}")
        near = frozenset(rule["near"]) - {"*"}
        compounds.append(Compound(_phrase(rule["lemma"]), near, "*" in rule["near"], rule["where"],
                                  int(rule["window"]), rule["becomes"]))

    lemmas = _public(raw["lemmas"])
    known = {word for table in (findings, region_phrases, anatomy, triggers) for p in table for word in p}
    known |= set(lemmas.values())
    return Lexicon(
        lemmas=MappingProxyType(lemmas),
        findings=MappingProxyType(findings),
        regions=MappingProxyType(regions),
        region_phrases=MappingProxyType(region_phrases),
        anatomy=MappingProxyType(anatomy),
        places=MappingProxyType({**region_phrases, **anatomy}),
        sides=MappingProxyType(_public(raw["sides"])),
        side_glue=frozenset(raw["side_glue"]),
        default_anatomy=MappingProxyType(default_anatomy),
        default_region=MappingProxyType(default_region),
        triggers=MappingProxyType(triggers),
        breaks=frozenset(_phrase(b) for b in raw["breaks"]),
        compounds=tuple(compounds),
        known_words=frozenset(known),
    )


@lru_cache(maxsize=1)
def default_lexicon() -> Lexicon:
    """The packaged lexicon (read once; immutable)."""
    with LEXICON_PATH.open(encoding="utf-8") as handle:
        return build_lexicon(json.load(handle))
