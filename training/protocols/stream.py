"""Films -> model outputs -> per-film rows, streamed in batches with a progress bar, resumable.

Every film goes through the evaluator's preprocessing (`decode_path` then the predictor's
`PreprocessingSpec.apply`, exactly what `medslip-eval` and the service do) and one `Predictor.predict`
per batch, on whatever device the predictor runs. Free-text queries ride along as extra pathology rows
after the model's book, the way the service appends a request's free-text findings: the set's `text:`
prompts (encoded once) and, for MS-CXR, the phrases of the batch's films (each box grounded by its own
phrase as well as by its category's prompt; rows marked `"query": "phrase"`). Decoding runs in a small
thread pool so the model is not left waiting on JPEG/DICOM decoding. Nothing large is kept: each batch
becomes JSONL rows (scores of the benchmark's classes and grounding figures of each region) appended to
a partial file, so an interrupted run resumes where it stopped and the metrics are computed from the
rows afterwards; a `.queries.json` beside each partial file records the model and query rows the rows
were made with, and a run with other ones starts the file afresh rather than mixing scores. Row keys are
hashes of the image path: partial files name no patient.
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

from app.contract.imaging import DecodedImage, ImagingError, decode_path
from training.data.manifest import ManifestRecord
from training.evaluation.predictors import Predictor
from training.metrics import box_to_mask, grounding_scores
from training.protocols.datasets import BenchmarkData
from training.protocols.prompts import QueryPlan
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


def _row(data: BenchmarkData, item: _Decoded, queries: Mapping[str, int], phrase_rows: Mapping[str, int],
         *, probs: NDArray[np.float32], maps: NDArray[np.float32], box: Any) -> dict[str, Any]:
    """probs (Q,), maps (Q, G, G) of one film (Q: the book, then the extra rows) -> its row; `box` is the
    film's letterbox."""
    assert item.image is not None
    pixels = item.image.pixels  # (H, W)
    shape = (int(pixels.shape[0]), int(pixels.shape[1]))
    grounding = []
    heatmaps: dict[int, NDArray[np.float32]] = {}

    def heatmap(index: int) -> NDArray[np.float32]:
        if index not in heatmaps:
            heatmaps[index] = box.to_original(maps[index])  # (H, W)
        return heatmaps[index]

    for name, kind, region in _regions(data, item.record, shape, queries):
        scores = grounding_scores(heatmap(queries[name]), region).to_dict()
        grounding.append({"class": name, "kind": kind, **scores})
    for region_box, phrase in zip(item.record.boxes, data.phrases.get(item.record.image, ()), strict=False):
        if phrase in phrase_rows:
            region = box_to_mask((region_box.x, region_box.y, region_box.w, region_box.h), shape)
            scores = grounding_scores(heatmap(phrase_rows[phrase]), region).to_dict()
            grounding.append({"class": region_box.label, "kind": "box", "query": "phrase", **scores})
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


def _encode(predictor: Predictor, texts: Sequence[str]) -> list[NDArray[np.float32]]:
    """[(N, T) embeddings] of the texts, or [] when there are none (no encoder call)."""
    return [predictor.encode_texts(texts)] if texts else []


def _phrases_on(predictor: Predictor, data: BenchmarkData, desc: str) -> bool:
    if not data.phrases:
        return False
    if predictor.info.text_encoder is None:
        logger.warning("%s: phrase grounding skipped, the model ships no text encoder", desc)
        return False
    return True


def _batch_phrases(data: BenchmarkData, batch: Sequence[_Decoded]) -> tuple[str, ...]:
    """The distinct non-empty phrases of the batch's films, in first-seen order."""
    texts = (text for item in batch for text in data.phrases.get(item.record.image, ()) if text)
    return tuple(dict.fromkeys(texts))


def _check_signature(partial: Path, signature: dict[str, Any], desc: str) -> None:
    """Keep `partial` only if it was made with the same model and query rows; else start it afresh."""
    sidecar = partial.with_suffix(".queries.json")
    text = json.dumps(signature, sort_keys=True)
    if partial.is_file() and (not sidecar.is_file() or sidecar.read_text(encoding="utf-8") != text):
        logger.warning("%s: earlier rows were made with another model or other prompts; rescoring", desc)
        partial.unlink()
    partial.parent.mkdir(parents=True, exist_ok=True)
    sidecar.write_text(text, encoding="utf-8")


def stream_rows(predictor: Predictor, data: BenchmarkData, records: Sequence[ManifestRecord],
                plan: QueryPlan, *, partial: Path, settings: StreamSettings,
                desc: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Rows of `records` (those already in `partial` are not recomputed) and the skip counts."""
    phrases_on = _phrases_on(predictor, data, desc)
    _check_signature(partial, {"model": predictor.info.sha256, "rows": plan.rows, "texts": list(plan.texts),
                               "phrases": phrases_on}, desc)
    done = {row["key"]: row for row in read_rows(partial)}
    todo = [record for record in records if record_key(record) not in done]
    if done:
        logger.info("%s: resuming, %d of %d films already scored", desc, len(records) - len(todo),
                    len(records))
    skipped: dict[str, int] = {}
    spec = predictor.info.preprocessing
    prompt_rows = _encode(predictor, plan.texts) if todo else []  # [(E, T)]: the set's text prompts
    first_phrase = len(predictor.info.pathology) + len(plan.texts)
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
                images = np.stack([x.tensor for x in prepared]).astype(np.float32)  # (B, 3, S, S)
                phrases = _batch_phrases(data, good) if phrases_on else ()
                extra = prompt_rows + _encode(predictor, phrases)
                outputs = predictor.predict(images, np.concatenate(extra) if extra else None)  # (E + P, T)
                phrase_rows = {text: first_phrase + i for i, text in enumerate(phrases)}
                for index, item in enumerate(good):
                    row = _row(data, item, plan.rows, phrase_rows, probs=outputs["pathology_probs"][index],
                               maps=outputs["pathology_maps"][index], box=prepared[index].box)
                    done[row["key"]] = row
                    handle.write(json.dumps(row, allow_nan=True) + "\n")
                handle.flush()
            bar.update(len(batch))
    keys = [record_key(record) for record in records]
    return [done[key] for key in keys if key in done], skipped
