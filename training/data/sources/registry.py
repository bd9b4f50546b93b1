"""Turn a config's source spec (kind + path) into manifest records."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.contract.locations import shared_data_dir
from app.contract.vocabulary import is_lateral
from training.data.manifest import ManifestRecord, read_manifest
from training.data.sources import covid, jsrt, kermany, mimic, nih
from training.data.sources.covid import FRONTAL_VIEWS, read_covid_chestxray
from training.data.sources.jsrt import read_jsrt_scr
from training.data.sources.kermany import read_kermany_pediatric
from training.data.sources.mimic import read_mimic_cxr
from training.data.sources.nih import read_nih_cxr14

SHARED_PLACEHOLDER = "{shared}"


@dataclass(frozen=True)
class SourceKind:
    """One data set a config or `build_manifest --source` can name."""

    name: str  # the `source` its records carry (manifests, reports, model cards)
    read: Callable[[Path, bool], list[ManifestRecord]]  # (root, frontal_only) -> records


#: config `kind` -> its data set; the one table every reader lookup goes through
SOURCE_KINDS: dict[str, SourceKind] = {
    "covid": SourceKind(covid.SOURCE, lambda root, frontal: read_covid_chestxray(root, frontal_only=frontal)),
    "kermany": SourceKind(kermany.SOURCE, lambda root, _frontal: read_kermany_pediatric(root)),
    "jsrt": SourceKind(jsrt.SOURCE, lambda root, _frontal: read_jsrt_scr(root)),
    "nih": SourceKind(nih.SOURCE, lambda root, _frontal: read_nih_cxr14(root)),
    "mimic": SourceKind(mimic.SOURCE, lambda root, frontal: read_mimic_cxr(root, frontal_only=frontal)),
}
#: config `kind` -> the name its records carry as `source`
SOURCE_NAMES = {kind: source.name for kind, source in SOURCE_KINDS.items()}


def expand_path(path: str) -> Path:
    """Expand the `{shared}` placeholder so configs need no machine-specific absolute paths."""
    return Path(path.replace(SHARED_PLACEHOLDER, str(shared_data_dir()))).expanduser()


def load_source(
    kind: str, path: str, *, frontal_only: bool = True, max_records: int = 0
) -> list[ManifestRecord]:
    """Records of one source; `max_records` keeps the first N of EACH split (smoke runs, tests)."""
    root = expand_path(path)
    if kind in SOURCE_KINDS:
        records = SOURCE_KINDS[kind].read(root, frontal_only)
    elif kind == "manifest":
        records = read_manifest(root)
        if frontal_only:
            records = [r for r in records if not is_lateral(r.view)]
    else:
        raise ValueError(f"unknown source kind {kind!r}")
    if max_records <= 0:
        return records
    kept: list[ManifestRecord] = []
    per_split: dict[str, int] = {}
    for record in records:
        if per_split.get(record.split, 0) < max_records:
            per_split[record.split] = per_split.get(record.split, 0) + 1
            kept.append(record)
    return kept


__all__ = ["FRONTAL_VIEWS", "SOURCE_KINDS", "SOURCE_NAMES", "SourceKind", "expand_path", "load_source"]
