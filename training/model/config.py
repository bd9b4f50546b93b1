"""The architecture of a MeDSLIP model as plain data, so a checkpoint or bundle can rebuild it exactly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from app.contract.vocabulary import ANATOMY, PATHOLOGY

TrunkName = Literal["resnet50", "resnet34", "resnet18"]
TextPooling = Literal["mean", "cls"]

#: Channels of each trunk stage (stem, layer1, layer2, layer3); layer3 is the patch-token width.
TRUNK_STAGE_CHANNELS: dict[str, tuple[int, int, int, int]] = {
    "resnet50": (64, 256, 512, 1024),
    "resnet34": (64, 64, 128, 256),
    "resnet18": (64, 64, 128, 256),
}

#: Total stride of the trunk output (layer3): a 224 px image gives a 14 x 14 token grid.
TRUNK_STRIDE = 16


@dataclass(frozen=True)
class ModelConfig:
    """Every hyper-parameter that changes the parameters or the forward pass of `MeDSLIP`.

    Defaults reproduce the released pre-training configuration (Pretrain_MeDSLIP.yaml) except the text
    encoder: the release used Bio_ClinicalBERT [CLS] (768-d); the default here is all-MiniLM-L6-v2 mean
    pooling (384-d), which ships as a local package and needs no download.
    """

    trunk: TrunkName = "resnet50"  # image backbone; layer3 output is the patch-token grid
    image_size: int = 224  # square input side S in pixels; the token grid is S // 16 per side
    d_model: int = 256  # width of the query decoders and of the projected patch tokens
    n_heads: int = 4  # attention heads in every decoder attention block
    n_layers: int = 4  # decoder layers per stream
    ffn_dim: int = 1024  # hidden width of the decoder feed-forward blocks
    dropout: float = 0.1  # dropout inside the decoders and on the decoder outputs before the heads
    text_dim: int = 384  # T: width of the query embeddings (384 all-MiniLM-L6-v2, 768 BERT-base)
    text_encoder: str = "all-minilm-l6-v2"  # "all-minilm-l6-v2" or a local Hugging Face BERT directory
    text_pooling: TextPooling = "mean"  # how token states become one sentence embedding
    text_normalize: bool = True  # L2-normalise sentence embeddings (as sentence-transformers does)
    max_text_length: int = 64  # tokens kept per query text (longer texts are truncated)
    num_pathology: int = len(PATHOLOGY)  # size of the built-in pathology query book (75)
    num_anatomy: int = len(ANATOMY)  # size of the built-in anatomy query book (51)
    num_existence_classes: int = 2  # existence head outputs (index 1 = present), as released

    def __post_init__(self) -> None:
        """Reject configurations that would only fail deep inside a forward pass."""
        if self.trunk not in TRUNK_STAGE_CHANNELS:
            raise ValueError(f"unknown trunk {self.trunk!r}; choose one of {sorted(TRUNK_STAGE_CHANNELS)}")
        if self.image_size <= 0 or self.image_size % TRUNK_STRIDE != 0:
            raise ValueError(
                f"image_size must be a positive multiple of {TRUNK_STRIDE}, got {self.image_size}"
            )
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.text_pooling not in ("mean", "cls"):
            raise ValueError(f"text_pooling must be 'mean' or 'cls', got {self.text_pooling!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("n_layers", "ffn_dim", "text_dim", "max_text_length", "num_pathology", "num_anatomy"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @property
    def stage_channels(self) -> tuple[int, int, int, int]:
        """Channels of (stem, layer1, layer2, layer3) of the trunk."""
        return TRUNK_STAGE_CHANNELS[self.trunk]

    @property
    def token_dim(self) -> int:
        """C: channels of one patch token (the trunk's layer3 width)."""
        return self.stage_channels[-1]

    @property
    def grid_size(self) -> int:
        """G: patch tokens per image side at `image_size`."""
        return self.image_size // TRUNK_STRIDE
