"""Films -> model outputs -> per-film rows, streamed in batches with a progress bar, resumable.

Every film goes through the evaluator's preprocessing (`decode_path` then the predictor's
`PreprocessingSpec.apply`, exactly what `medslip-eval` and the service do) and one `Predictor.predict`
per batch, on whatever device the predictor runs. Decoding runs in a small thread pool so the model is
not left waiting on JPEG/DICOM decoding. Nothing large is kept: each batch becomes JSONL rows (scores of
the benchmark's classes and grounding figures of each region) appended to a partial file, so an
interrupted run resumes where it stopped and the metrics are computed from the rows afterwards. Row keys
are hashes of the image path: partial files name no patient.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from app.imaging import DecodedImage, ImagingError, decode_path
from training.data.manifest import ManifestRecord
from training.metrics import box_to_mask, grounding_scores
from training.predictors import Predictor
from training.protocols.datasets import BenchmarkData
from training.protocols.siim import decode_masks

logger = logging.getLogger(__name__)


def record_key(record: ManifestRecord) -> str:
    """Stable row key of a film (the path's SHA-256 prefix: no file or patient name in the rows)."""
    return hashlib.sha256(record.image.encode("utf-8")).hexdigest()[:20]


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a partial file; a torn last line (a run killed mid-write) is dropped."""
    rows: list[dict[str, Any]] = []
    if not path.is_file():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            logger.warning("dropped a torn line of %s", path.name)
    return rows


@dataclass
class StreamSettings:
    batch_size: int = 16
    workers: int = 2  # decoding threads
    progress: bool = True


@dataclass(frozen=True)
class _Decoded:
    record: ManifestRecord
    image: DecodedImage | None
    error: str | None


def _decode(record: ManifestRecord) -> _Decoded:
    try:
        return _Decoded(record, decode_path(record.image), None)
    except ImagingError as exc:  # the code only: details may name the file
        return _Decoded(record, None, exc.code)


def _regions(data: BenchmarkData, record: ManifestRecord, shape: tuple[int, int],
             queries: Mapping[str, int]) -> list[tuple[str, str, NDArray[np.bool_]]]:
    """(class, kind, boolean (H, W) region) of every annotated region the queries can score."""
    regions = [(box.label, "box", box_to_mask((box.x, box.y, box.w, box.h), shape))
               for box in record.boxes if box.label in queries]
    rles = data.rle_masks.get(record.image)
    if rles:
        for name in data.classes:  # SIIM: one class, the union of its regions
            if name in queries:
                regions.append((name, "mask", decode_masks(rles, shape)))
    return regions


def _row(data: BenchmarkData, item: _Decoded, queries: Mapping[str, int], *, probs: NDArray[np.float32],
         maps: NDArray[np.float32], box: Any) -> dict[str, Any]:
    """probs (Qp,), maps (Qp, G, G) of one film -> its row."""
    assert item.image is not None
    pixels = item.image.pixels  # (H, W)
    shape = (int(pixels.shape[0]), int(pixels.shape[1]))
    grounding = []
    heatmaps: dict[str, NDArray[np.float32]] = {}
    for name, kind, region in _regions(data, item.record, shape, queries):
        if name not in heatmaps:
            heatmaps[name] = box.to_original(maps[queries[name]])  # (H, W)
        scores = grounding_scores(heatmaps[name], region).to_dict()
        grounding.append({"class": name, "kind": kind, **scores})
    return {
        "key": record_key(item.record), "split": item.record.split,
        "labels": {k: v for k, v in (item.record.labels or {}).items() if k in queries},
        "scores": {name: float(probs[index]) for name, index in queries.items()},
        "grounding": grounding,
    }


def _batches(records: Sequence[ManifestRecord], settings: StreamSettings) -> Iterator[list[_Decoded]]:
    with ThreadPoolExecutor(max_workers=max(1, settings.workers)) as pool:
        for start in range(0, len(records), settings.batch_size):
            yield list(pool.map(_decode, records[start:start + settings.batch_size]))


def stream_rows(predictor: Predictor, data: BenchmarkData, records: Sequence[ManifestRecord],
                queries: Mapping[str, int], *, partial: Path, settings: StreamSettings,
                desc: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Rows of `records` (those already in `partial` are not recomputed) and the skip counts."""
    done = {row["key"]: row for row in read_rows(partial)}
    todo = [record for record in records if record_key(record) not in done]
    if done:
        logger.info("%s: resuming, %d of %d films already scored", desc, len(records) - len(todo),
                    len(records))
    skipped: dict[str, int] = {}
    spec = predictor.info.preprocessing
    partial.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(records), initial=len(records) - len(todo), desc=desc, unit="film",
               disable=not settings.progress)
    with partial.open("a", encoding="utf-8") as handle, bar:
        for batch in _batches(todo, settings):
            good = [item for item in batch if item.image is not None]
            for item in batch:
                if item.error is not None:
                    skipped[item.error] = skipped.get(item.error, 0) + 1
            if good:
                prepared = [spec.apply(item.image.pixels) for item in good if item.image is not None]
                images = np.stack([x for x, _ in prepared]).astype(np.float32)  # (B, 3, S, S)
                outputs = predictor.predict(images)
                for index, item in enumerate(good):
                    row = _row(data, item, queries, probs=outputs["pathology_probs"][index],
                               maps=outputs["pathology_maps"][index], box=prepared[index][1])
                    done[row["key"]] = row
                    handle.write(json.dumps(row, allow_nan=True) + "\n")
                handle.flush()
            bar.update(len(batch))
    keys = [record_key(record) for record in records]
    return [done[key] for key in keys if key in done], skipped
