"""Which model query scores each benchmark class: class name -> prompt, written down here and overridable
with a JSON file (`--prompts FILE`: {"<dataset>": {"<class>": "<prompt>"}}).

A prompt is one of:
- `entity:<name>` (or a bare `<name>`, the original format): a pathology ENTITY of the model, whose
  description was encoded into the query book when the bundle or checkpoint was built; zero-shot
  classification and grounding read that entity's probability and map.
- `text:<free text>`: a sentence encoded by the model's own text encoder (the bundle's `text_encoder.onnx`
  through `app.textquery`, exactly as the service scores free-text findings; a checkpoint's encoder
  through `training.model.text_encoder`) and appended to the query book as an extra row.

CXR14 uses the entity list's own mapping (`CXR14_TO_PATHOLOGY`, the released evaluation's: Fibrosis is
the tail class, Pleural_Thickening is `thicken`). Classes with no entity of their own map to the nearest
one, and the report prints the mapping it used: COVID-19 is scored by `pneumonia` by default (MeDSLIP's
vocabulary has no COVID entity; the paper encoded a new description, which `text:` prompts now allow).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.contract.vocabulary import CXR14_TO_PATHOLOGY

ENTITY_PREFIX = "entity:"
TEXT_PREFIX = "text:"

DEFAULT_PROMPTS: dict[str, dict[str, str]] = {
    "cxr14": dict(CXR14_TO_PATHOLOGY),
    "rsna": {"Pneumonia": "pneumonia"},
    "siim": {"Pneumothorax": "pneumothorax"},
    "covidx": {"COVID-19": "pneumonia"},
    "mscxr": {
        "Atelectasis": "atelectasis", "Cardiomegaly": "cardiomegaly", "Consolidation": "consolidation",
        "Edema": "edema", "Lung Opacity": "opacity", "Pleural Effusion": "effusion",
        "Pneumonia": "pneumonia", "Pneumothorax": "pneumothorax",
    },
}


class PromptError(ValueError):
    """A prompt that is malformed, names an entity the model has no query for, or needs a text encoder
    the model lacks."""


@dataclass(frozen=True)
class Prompt:
    """One parsed prompt: an entity name or a free text."""

    kind: str  # "entity" | "text"
    value: str  # the entity name, or the free text


def parse_prompt(spec: str) -> Prompt:
    """`entity:<name>` | `text:<free text>` | `<name>` (an entity) -> Prompt; empty values are errors."""
    if spec.startswith(TEXT_PREFIX):
        prompt = Prompt("text", spec[len(TEXT_PREFIX):].strip())
    else:
        prompt = Prompt("entity", spec.removeprefix(ENTITY_PREFIX).strip())
    if not prompt.value:
        raise PromptError(f"empty {prompt.kind} prompt {spec!r}")
    return prompt


def load_prompts(path: Path | None) -> dict[str, dict[str, str]]:
    """DEFAULT_PROMPTS with the file's entries laid over them (per class); every value is parsed here, so
    a malformed prompt stops the run before any film is read."""
    prompts = {name: dict(mapping) for name, mapping in DEFAULT_PROMPTS.items()}
    if path is None:
        return prompts
    override = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(override, dict):
        raise PromptError("the prompts file must be a JSON object {dataset: {class: prompt}}")
    for dataset, mapping in override.items():
        if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
            raise PromptError(f"prompts[{dataset!r}] must be an object {{class: prompt string}}")
        for spec in mapping.values():
            parse_prompt(spec)
        prompts.setdefault(str(dataset), {}).update({str(k): v for k, v in mapping.items()})
    return prompts


@dataclass(frozen=True)
class QueryPlan:
    """Where each class is read in the pathology outputs: rows 0..Qp-1 are the model's query book, rows
    Qp.. are `texts` (free-text prompts, encoded once and appended in this order)."""

    rows: dict[str, int]  # class -> output row
    texts: tuple[str, ...] = ()


def _entity_index(entity: str, names: Sequence[str]) -> int:
    if entity not in names:
        raise PromptError(f"entities [{entity!r}] are not queries of this model; choose among {list(names)}")
    return list(names).index(entity)


def plan_queries(mapping: Mapping[str, str], names: Sequence[str]) -> QueryPlan:
    """The rows of every class's prompt. An unknown entity is an error that lists what the model offers,
    because a silent fallback would score the wrong finding; equal texts share one row."""
    parsed = {name: parse_prompt(spec) for name, spec in mapping.items()}
    missing = sorted({p.value for p in parsed.values() if p.kind == "entity" and p.value not in names})
    if missing:
        raise PromptError(f"entities {missing} are not queries of this model; choose among {list(names)}")
    texts = tuple(dict.fromkeys(p.value for p in parsed.values() if p.kind == "text"))
    rows = {name: _entity_index(p.value, names) if p.kind == "entity" else len(names) + texts.index(p.value)
            for name, p in parsed.items()}
    return QueryPlan(rows=rows, texts=texts)


def entity_mapping(mapping: Mapping[str, str], classes: Sequence[str]) -> dict[str, str]:
    """{class: entity} for the classes; fine-tuning trains the existence head of an ENTITY query, so a
    free-text prompt there is refused with what to do instead."""
    out: dict[str, str] = {}
    for name in classes:
        prompt = parse_prompt(mapping[name])
        if prompt.kind != "entity":
            raise PromptError(f"fine-tuning needs an entity prompt for {name!r} (it tunes that entity's "
                              "query); give one, or run --tasks zeroshot,grounding for the free text")
        out[name] = prompt.value
    return out


def query_indices(mapping: Mapping[str, str], names: Sequence[str]) -> dict[str, int]:
    """{class: index of its entity in the model's pathology query order}: entity prompts only."""
    return {name: _entity_index(entity, names)
            for name, entity in entity_mapping(mapping, list(mapping)).items()}
