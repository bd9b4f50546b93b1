"""Rule-based report -> anatomy x pathology matrix, the supervision MeDSLIP trains on.

The official pipeline labels reports with RadGraph, whose weights cannot be used here; this parser
produces the same (51, 75) target from hand-written, reviewable rules (`lexicon.json`), sentence by
sentence: phrases -> findings and places, sides attached to places, NegEx scopes, then each place is
attached to its nearest finding in the clause. Accuracy against IU MeSH tags: docs/reports_parser.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.contract.vocabulary import ANATOMY, PATHOLOGY
from training.reports.lexicon import VOCABULARY_ENTITIES, Lexicon, default_lexicon
from training.reports.scope import Scopes, clause_indices, compute_scopes
from training.reports.text import Match, find_phrases, lemmatize, split_sentences, tokenize

PRESENT, ABSENT, NOT_MENTIONED = 1, 0, -1
_PATHOLOGY_INDEX = {name: i for i, name in enumerate(PATHOLOGY)}
_ANATOMY_INDEX = {name: i for i, name in enumerate(ANATOMY)}


@dataclass(frozen=True)
class ReportLabels:
    """Labels of one report; see docs/contracts.md "Report labels"."""

    matrix: np.ndarray  # (51, 75) int8: 1 present, 0 absent, -1 not mentioned
    pathology: np.ndarray  # (75,) int8: column max of `matrix`
    anatomy: np.ndarray  # (51,) int8: row max of `matrix`

    @classmethod
    def from_matrix(cls, matrix: np.ndarray) -> ReportLabels:
        """Derive the vectors; with values in {-1, 0, 1}, "1 if any 1, else 0 if any 0" is a max."""
        return cls(matrix=matrix, pathology=matrix.max(axis=0), anatomy=matrix.max(axis=1))

    def present_pathologies(self) -> list[str]:
        """Names of the findings labelled present (for logs and tests)."""
        return [PATHOLOGY[i] for i in np.flatnonzero(self.pathology == PRESENT)]


@dataclass(frozen=True)
class Mention:
    """One finding in one sentence, with where it is and how it is said."""

    pathology: str
    anatomies: tuple[str, ...]
    value: int
    sentence: str


@dataclass(frozen=True)
class _Place:
    start: int  # first token, side words included
    end: int
    anatomies: tuple[str, ...]


#: Words that link a place to the finding BEFORE it ("opacity in the left base").
_PREPOSITIONS = frozenset({"in", "at", "of", "within", "involve", "involving", "overlie", "overlying",
                           "along", "over", "project", "projecting", "on", "near", "throughout", "from",
                           "into"})
_ARTICLES = frozenset({"the", "a", "an", "both"})


def _attach_sides(lemmas: list[str], places: list[Match[str | tuple[str, ...]]], lexicon: Lexicon,
                  ) -> tuple[list[_Place], dict[int, str]]:
    """Resolve region phrases with their side words; return places and the side words left over."""
    covered = {i for match in places for i in range(match.start, match.end)}
    free_sides = {i: lexicon.sides[w] for i, w in enumerate(lemmas)
                  if w in lexicon.sides and i not in covered}
    resolved: list[_Place] = []
    for match in places:
        if isinstance(match.value, tuple):
            resolved.append(_Place(match.start, match.end, match.value))
            continue
        said: list[str] = []
        first = match.start
        position = match.start - 1
        while position >= 0 and (lemmas[position] in lexicon.side_glue or position in free_sides):
            if position in free_sides:
                said.append(free_sides.pop(position))
                first = position
            position -= 1
        if match.end < len(lemmas) and free_sides.get(match.end) == "both":
            said.append(free_sides.pop(match.end))
        resolved.append(_Place(first, match.end, lexicon.regions[match.value].for_side(_side_of(said))))
    return resolved, free_sides


def _side_of(sides: list[str]) -> str | None:
    """One side from the side words said: left + right (or 'bilateral') is both."""
    if not sides:
        return None
    return "both" if "both" in sides or len(set(sides)) > 1 else sides[0]


def _apply_compounds(lemmas: list[str], findings: list[Match[str]], clause: list[int],
                     lexicon: Lexicon) -> list[Match[str]]:
    """Re-read words whose meaning depends on a neighbour (see lexicon.json "compounds")."""
    finding_starts = {f.start for f in findings if f.value not in VOCABULARY_ENTITIES}
    kept: list[Match[str]] = []
    for finding in findings:
        phrase = tuple(lemmas[finding.start : finding.end])
        value: str | None = finding.value
        for rule in lexicon.compounds:
            if rule.lemma != phrase:
                continue
            others = finding_starts - {finding.start} if rule.near_any_finding else set()
            after = range(finding.end, min(len(lemmas), finding.end + rule.window))
            before = range(finding.start - 1, max(-1, finding.start - 1 - rule.window), -1)
            spans = {"after": [after], "before": [before], "any": [after, before]}[rule.where]
            if any(_first_neighbour(lemmas, span, clause, rule.near, others) for span in spans):
                value = rule.becomes
                break
        if value is not None:
            kept.append(Match(finding.start, finding.end, value))
    return kept


def _first_neighbour(lemmas: list[str], span: range, clause: list[int], near: frozenset[str],
                     other_findings: set[int]) -> bool:
    """Whether a wanted neighbour lies in `span` before a comma or the end of the clause."""
    own_clause = clause[span.start] if span else -1
    for position in span:
        if clause[position] != own_clause or lemmas[position] == ",":
            return False
        if lemmas[position] in near or position in other_findings:
            return True
    return False


def _owner(place: _Place, candidates: list[int], findings: list[Match[str]], lemmas: list[str]) -> int:
    """The finding a place belongs to: after a preposition, the nearest finding before it; else nearest."""
    position = place.start - 1
    while position >= 0 and lemmas[position] in _ARTICLES:
        position -= 1
    if position >= 0 and lemmas[position] in _PREPOSITIONS:
        before = [i for i in candidates if findings[i].end <= place.start]
        if before:
            return max(before, key=lambda i: findings[i].end)

    def distance(i: int) -> tuple[int, int]:
        f = findings[i]
        gap = place.start - f.end if f.end <= place.start else f.start - place.end
        return (max(gap, 0), 0 if f.start >= place.end else 1)  # ties: the finding after ("left effusion")

    return min(candidates, key=distance)


def _value(position: int, pathology: str, lemmas: list[str], scopes: Scopes, uncertain_as: int) -> int:
    if pathology in VOCABULARY_ENTITIES:
        # "clear", "normal", ... are statements of their own; only a "not" right before negates them.
        return ABSENT if position > 0 and lemmas[position - 1] == "not" else PRESENT
    if scopes.negated[position]:
        return ABSENT
    if scopes.uncertain[position]:
        return uncertain_as
    return PRESENT


def sentence_mentions(sentence: str, lexicon: Lexicon, uncertain_as: int = PRESENT) -> list[Mention]:
    """All finding mentions of one sentence, each with its anatomies and value."""
    lemmas = [lemmatize(t, lexicon.lemmas, lexicon.known_words) for t in tokenize(sentence)]
    raw_findings = [Match(m.start, m.end, m.value) for m in find_phrases(lemmas, lexicon.findings)
                    if m.value is not None]
    if not raw_findings:
        return []
    breaks = find_phrases(lemmas, dict.fromkeys(lexicon.breaks, True))
    findings = _apply_compounds(lemmas, raw_findings, clause_indices(len(lemmas), breaks), lexicon)
    places, free_sides = _attach_sides(lemmas, find_phrases(lemmas, lexicon.places), lexicon)
    stops = [m.start for m in findings if m.value in VOCABULARY_ENTITIES]
    scopes = compute_scopes(len(lemmas), find_phrases(lemmas, lexicon.triggers), breaks, stops)

    attached: dict[int, list[str]] = {i: [] for i in range(len(findings))}
    for place in places:
        place_clause = scopes.clause[place.start]
        candidates = [i for i, f in enumerate(findings) if scopes.clause[f.start] == place_clause]
        if candidates:
            attached[_owner(place, candidates, findings, lemmas)].extend(place.anatomies)
    # A finding said twice in a clause ("calcified granuloma") shares the place of its placed twin.
    placed = {(scopes.clause[f.start], f.value): attached[i] for i, f in enumerate(findings) if attached[i]}

    mentions: list[Mention] = []
    for i, finding in enumerate(findings):
        clause = scopes.clause[finding.start]
        anatomies = tuple(dict.fromkeys(attached[i] or placed.get((clause, finding.value), [])))
        if not anatomies:
            side = _side_of([s for pos, s in free_sides.items() if scopes.clause[pos] == clause])
            if side is not None:
                anatomies = lexicon.regions[lexicon.default_region.get(finding.value, "lung")].for_side(side)
            else:
                anatomies = lexicon.default_anatomy.get(finding.value, ("unspecified",))
        value = _value(finding.start, finding.value, lemmas, scopes, uncertain_as)
        mentions.append(Mention(finding.value, anatomies, value, sentence))
    return mentions


def parse_report(text: str, *, uncertain_as: int = PRESENT, lexicon: Lexicon | None = None) -> ReportLabels:
    """Label a free-text report.

    uncertain_as: value given to hedged findings ("may represent atelectasis"); 1 by default, as
    MedKLIP / MeDSLIP pretraining treats uncertain mentions as positive; 0 or -1 for stricter targets.
    """
    if uncertain_as not in (PRESENT, ABSENT, NOT_MENTIONED):
        raise ValueError(f"uncertain_as must be 1, 0 or -1, got {uncertain_as}")
    lexicon = lexicon or default_lexicon()
    matrix = np.full((len(ANATOMY), len(PATHOLOGY)), NOT_MENTIONED, dtype=np.int8)  # (51, 75)
    for sentence in split_sentences(text):
        for mention in sentence_mentions(sentence, lexicon, uncertain_as):
            column = _PATHOLOGY_INDEX[mention.pathology]
            for anatomy in mention.anatomies:
                row = _ANATOMY_INDEX[anatomy]
                matrix[row, column] = max(int(matrix[row, column]), mention.value)
    return ReportLabels.from_matrix(matrix)
