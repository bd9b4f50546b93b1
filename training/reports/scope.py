"""NegEx-style negation and uncertainty scopes over one sentence.

A cue ("no", "may", "is not seen") opens a scope that runs forward (pre-cues) or backward (post-cues)
within its clause; clause breaks ("but", "however", "although", ...) end every scope, so "no effusion
but a small left pneumothorax" keeps the pneumothorax present. Negation wins over uncertainty ("no
consolidation to suggest pneumonia": pneumonia is negated), as in NegEx / the CheXpert labeler.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from training.reports.text import Match

#: Longest forward / backward reach of a cue, in tokens (commas count); long enough for
#: "no acute bony abnormality, pleural effusion, pneumothorax, or focal airspace consolidation".
FORWARD_REACH = 16
BACKWARD_REACH = 8


@dataclass(frozen=True)
class Scopes:
    """Per-token clause index and scope flags of one sentence."""

    clause: list[int]
    negated: list[bool]
    uncertain: list[bool]


def clause_indices(n_tokens: int, breaks: list[Match[bool]]) -> list[int]:
    """Clause number of every token; a break word starts a new clause."""
    starts = sorted(match.start for match in breaks)
    clause, current, next_break = [], 0, 0
    for position in range(n_tokens):
        while next_break < len(starts) and starts[next_break] <= position:
            current += 1
            next_break += 1
        clause.append(current)
    return clause


def compute_scopes(n_tokens: int, triggers: list[Match[str]], breaks: list[Match[bool]],
                   stops: Collection[int]) -> Scopes:
    """Mark tokens inside negation / uncertainty scopes.

    triggers: cue matches whose value is the cue kind (pre_negation, post_negation, pre_uncertain,
    post_uncertain, pseudo). stops: token positions that end a forward scope (report-vocabulary words
    such as "clear", which start a new, affirmative statement).
    """
    clause = clause_indices(n_tokens, breaks)
    negated = [False] * n_tokens
    uncertain = [False] * n_tokens
    negation_cues = {m.start for m in triggers if m.value.endswith("negation")}
    stop_set = set(stops)
    for match in triggers:
        if match.value == "pseudo":
            continue
        flags = negated if match.value.endswith("negation") else uncertain
        if match.value.startswith("pre"):
            end = min(n_tokens, match.end + FORWARD_REACH)
            for position in range(match.end, end):
                if clause[position] != clause[match.start] or position in stop_set:
                    break
                if flags is uncertain and position in negation_cues:
                    break  # "possible X, no Y": Y belongs to the negation, not the hedge
                flags[position] = True
        else:
            start = max(0, match.start - BACKWARD_REACH)
            for position in range(match.start - 1, start - 1, -1):
                if clause[position] != clause[match.start]:
                    break
                flags[position] = True
    return Scopes(clause=clause, negated=negated, uncertain=uncertain)
