"""Text encoder pooling, local-only loading, and the query books built from it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from app.contract.vocabulary import PATHOLOGY
from tests.support.training.tiny_bert import write_tiny_bert
from training.model.entities import anatomy_query_texts
from training.model.text_encoder import (
    TextEncoder,
    build_query_books,
    load_descriptions,
    pathology_query_texts,
    pool_embeddings,
    resolve_text_encoder_dir,
)

SENTENCES = ["Small left pleural effusion.", "No pneumothorax; the heart size is normal."]


@pytest.fixture(scope="module")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("tiny_bert"), hidden_size=24)


def test_mean_pooling_matches_sentence_transformers_reference() -> None:
    sentence_transformers = pytest.importorskip("sentence_transformers")
    directory = resolve_text_encoder_dir("all-minilm-l6-v2")
    reference = sentence_transformers.SentenceTransformer(str(directory), device="cpu", local_files_only=True)
    expected = reference.encode(SENTENCES, convert_to_tensor=True, normalize_embeddings=False)
    encoder = TextEncoder.from_pretrained("all-minilm-l6-v2", pooling="mean", normalize=True)
    ours = encoder.encode(SENTENCES)
    assert ours.shape == (2, 384) and encoder.dim == 384
    assert torch.allclose(ours, expected.cpu().float(), atol=1e-5)


def test_pool_embeddings_ignores_padding_and_picks_cls() -> None:
    hidden = torch.tensor([[[1.0, 0.0], [3.0, 4.0], [100.0, 100.0]]])  # (1, 3, 2); token 2 is padding
    mask = torch.tensor([[1, 1, 0]])
    assert torch.allclose(pool_embeddings(hidden, mask, "mean", normalize=False), torch.tensor([[2.0, 2.0]]))
    assert torch.allclose(pool_embeddings(hidden, mask, "cls", normalize=False), torch.tensor([[1.0, 0.0]]))
    normed = pool_embeddings(hidden, mask, "mean", normalize=True)
    assert torch.allclose(normed.norm(dim=-1), torch.ones(1))
    with pytest.raises(ValueError, match="pooling"):
        pool_embeddings(hidden, mask, "max", normalize=False)


def test_encode_is_batch_invariant_and_frozen(tiny_encoder_dir: Path) -> None:
    encoder = TextEncoder.from_pretrained(tiny_encoder_dir, pooling="cls", normalize=False)
    texts = ["effusion", "a much longer sentence about the right lower lobe", "edema"]
    together = encoder.encode(texts, batch_size=8)
    one_by_one = torch.cat([encoder.encode([t]) for t in texts])
    assert together.shape == (3, 24)
    assert torch.allclose(together, one_by_one, atol=1e-5)
    assert not any(p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert not encoder.training
    with pytest.raises(TypeError):
        encoder.encode("one string")


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        resolve_text_encoder_dir(tmp_path / "absent")


def test_packaged_descriptions_cover_every_pathology() -> None:
    descriptions = load_descriptions()
    texts = pathology_query_texts(descriptions)
    assert len(texts) == len(PATHOLOGY) == 75
    assert all(len(t.split()) >= 8 for t in texts)
    assert len(set(texts)) == 75
    with pytest.raises(ValueError, match="missing for 1"):
        pathology_query_texts({k: v for k, v in descriptions.items() if k != "pneumothorax"})


def test_build_query_books_shapes_and_order(tiny_encoder_dir: Path) -> None:
    encoder = TextEncoder.from_pretrained(tiny_encoder_dir, pooling="mean", normalize=True)
    descriptions = load_descriptions()
    pathology_book, anatomy_book = build_query_books(encoder, descriptions)
    assert pathology_book.shape == (75, 24) and anatomy_book.shape == (51, 24)
    index = PATHOLOGY.index("effusion")
    assert torch.allclose(pathology_book[index], encoder.encode([descriptions["effusion"]])[0], atol=1e-6)
    assert torch.allclose(anatomy_book[3], encoder.encode([anatomy_query_texts()[3]])[0], atol=1e-6)
