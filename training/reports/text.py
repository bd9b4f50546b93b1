"""Sentence splitting, tokens, lemmas and longest-phrase matching for radiology report text.

Reports come de-identified (IU: "XXXX" for any redacted word, "x-XXXX" for "x-ray"), with numbered
impressions ("1. ... 2. ...") and missing spaces after full stops ("apex.There"); the splitter copes with
all three without a language model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

_XRAY = re.compile(r"\bx-?(?:xxxx|ray)s?\b", re.IGNORECASE)
# A full stop unless it is a decimal point (digit on both sides), and ? ! ; and newlines.
_SENTENCE_END = re.compile(r"(?<!\d)\.|\.(?!\d)|[?!;\n]")
_TOKEN = re.compile(r"[a-z]+|\d+(?:\.\d+)?|,")

T = TypeVar("T")


def split_sentences(text: str) -> list[str]:
    """Split a report into sentences; empty pieces and bare bullet numbers are dropped."""
    text = _XRAY.sub("xray", text)
    pieces = (piece.strip() for piece in _SENTENCE_END.split(text))
    return [piece for piece in pieces if piece and not piece.isdigit()]


def tokenize(sentence: str) -> list[str]:
    """Lower-case word tokens; hyphens split words ("well-expanded" -> well, expanded); commas kept."""
    return _TOKEN.findall(sentence.lower())


def lemmatize(token: str, lemmas: Mapping[str, str], known_words: frozenset[str]) -> str:
    """Map a token to its lemma: table first, then regular plurals of words the lexicon knows."""
    if token in lemmas:
        return lemmas[token]
    for suffix, replacement in (("ies", "y"), ("es", ""), ("s", "")):
        if token.endswith(suffix) and len(token) > len(suffix) + 2:
            stem = token[: -len(suffix)] + replacement
            if stem in known_words:
                return lemmas.get(stem, stem)
    return token


@dataclass(frozen=True)
class Match(Generic[T]):
    """A phrase found at tokens [start, end)."""

    start: int
    end: int
    value: T


def find_phrases(lemmas: list[str], table: Mapping[tuple[str, ...], T], max_len: int = 5) -> list[Match[T]]:
    """Greedy left-to-right longest match of `table` phrases over a lemma sequence (no overlaps)."""
    matches: list[Match[T]] = []
    position = 0
    while position < len(lemmas):
        for length in range(min(max_len, len(lemmas) - position), 0, -1):
            key = tuple(lemmas[position : position + length])
            if key in table:
                matches.append(Match(position, position + length, table[key]))
                position += length
                break
        else:
            position += 1
    return matches
