"""Which model query scores each benchmark class: class name -> pathology entity, written down here and
overridable with a JSON file (`--prompts FILE`: {"<dataset>": {"<class>": "<entity>"}}).

A MeDSLIP query is a pathology ENTITY (its description was encoded into the query book when the bundle
or checkpoint was built), so zero-shot classification and grounding read the probability and the map of
that entity. CXR14 uses the entity list's own mapping (`CXR14_TO_PATHOLOGY`, the released evaluation's:
Fibrosis is the tail class, Pleural_Thickening is `thicken`). Classes with no entity of their own map to
the nearest one, and the report prints the mapping it used: COVID-19 is scored by `pneumonia` (MeDSLIP's
vocabulary has no COVID entity; the paper encoded a new description, which a fixed query book cannot).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from training.model.entities import CXR14_TO_PATHOLOGY

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
    """A mapping that names an entity the model has no query for."""


def load_prompts(path: Path | None) -> dict[str, dict[str, str]]:
    """DEFAULT_PROMPTS with the file's entries laid over them (per class)."""
    prompts = {name: dict(mapping) for name, mapping in DEFAULT_PROMPTS.items()}
    if path is None:
        return prompts
    override = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(override, dict):
        raise PromptError("the prompts file must be a JSON object {dataset: {class: entity}}")
    for dataset, mapping in override.items():
        if not isinstance(mapping, dict):
            raise PromptError(f"prompts[{dataset!r}] must be an object {{class: entity}}")
        prompts.setdefault(str(dataset), {}).update({str(k): str(v) for k, v in mapping.items()})
    return prompts


def query_indices(mapping: Mapping[str, str], names: Sequence[str]) -> dict[str, int]:
    """{class: index of its entity in the model's pathology query order}; an unknown entity is an error
    that lists what the model offers, because a silent fallback would score the wrong finding."""
    missing = sorted({entity for entity in mapping.values() if entity not in names})
    if missing:
        raise PromptError(f"entities {missing} are not queries of this model; choose among {list(names)}")
    return {name: list(names).index(entity) for name, entity in mapping.items()}
