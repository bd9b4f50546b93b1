"""Free-text findings ("patchy opacity in the left lower lobe") -> query embeddings (text-encoder graph).

Why a cache: clinicians reuse phrasings; encoding is a model call, the LRU makes repeats free.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from app.contract.bundle import TextEncoderBundle

logger = logging.getLogger(__name__)


class TextQueryEncoder:
    """Tokenizer + `text_encoder.onnx`, with a thread-safe LRU of per-text embeddings."""

    def __init__(
        self, bundle: TextEncoderBundle, *, cache_size: int = 1024, intra_op_threads: int = 0
    ) -> None:
        self._tokenizer = Tokenizer.from_file(str(bundle.tokenizer_path))
        self._tokenizer.enable_truncation(max_length=bundle.max_length)
        self._tokenizer.no_padding()  # we pad ourselves, with the mask taken from each encoding
        options = ort.SessionOptions()
        if intra_op_threads:
            options.intra_op_num_threads = intra_op_threads
        self._session = ort.InferenceSession(
            str(bundle.graph_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._input_names = {i.name for i in self._session.get_inputs()}
        self._dim = bundle.dim
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: list[str]) -> np.ndarray:
        """(N, T) float32 embeddings, in the order of `texts`; cached texts skip the model."""
        missing = [t for t in dict.fromkeys(texts) if self._cached(t) is None]
        if missing:
            for text, vector in zip(missing, self._run(missing), strict=True):
                self._store(text, vector)
        rows = [self._cached(t) for t in texts]
        if not rows:
            return np.zeros((0, self._dim), dtype=np.float32)
        return np.stack([r if r is not None else self._run([t])[0] for r, t in zip(rows, texts, strict=True)])

    def _cached(self, text: str) -> np.ndarray | None:
        with self._lock:
            vector = self._cache.get(text)
            if vector is not None:
                self._cache.move_to_end(text)
            return vector

    def _store(self, text: str, vector: np.ndarray) -> None:
        if self._cache_size == 0:
            return
        with self._lock:
            self._cache[text] = vector
            self._cache.move_to_end(text)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _run(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        length = max(1, *(len(e.ids) for e in encodings))
        ids = np.zeros((len(texts), length), dtype=np.int64)  # (N, L)
        mask = np.zeros((len(texts), length), dtype=np.int64)  # (N, L)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = enc.attention_mask
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        (embeddings,) = self._session.run(["embeddings"], feeds)
        return np.asarray(embeddings, dtype=np.float32)  # (N, T)
