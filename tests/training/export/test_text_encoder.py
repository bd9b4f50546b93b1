"""Text-encoder export: a tiny random BERT built here (no downloads) must round-trip through ONNX."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

from app.contract.bundle_metadata import TextEncoderMetadata
from training.export.bundle import book_agreement
from training.export.text_encoder import (
    cpu_session,
    export_text_encoder,
    load_tokenizer,
    run_session,
    tokenize,
)
from training.model.text_encoder import TextEncoder

_WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "normal", "effusion", "it", "is", "located", "at", "."]


@pytest.fixture(scope="module")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(_WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(str(folder))
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(_WORDS)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder


def _encoder(folder: Path, pooling: str = "mean", max_length: int = 16) -> TextEncoder:
    hf_tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), pad_token="[PAD]")
    model = BertModel.from_pretrained(str(folder))
    return TextEncoder(model, hf_tokenizer, pooling=pooling, normalize=True, max_length=max_length)


@pytest.fixture(scope="module")
def fp32_bundle(tiny_encoder_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("text-encoders") / "tiny" / "1"
    export_text_encoder(_encoder(tiny_encoder_dir), tiny_encoder_dir / "tokenizer.json", out, name="tiny",
                        version="1")
    return out


def test_fp32_export_matches_torch_for_any_batch_and_length(
    tiny_encoder_dir: Path, fp32_bundle: Path
) -> None:
    out = fp32_bundle
    encoder = _encoder(tiny_encoder_dir)
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["parity"]["fp32_max_abs_diff"] <= 1e-4
    assert set(TextEncoderMetadata.REQUIRED_KEYS) <= set(metadata)
    assert metadata["dim"] == 32 and metadata["sha256"] == metadata["files"]["text_encoder.onnx"]
    TextEncoderMetadata.verify(out)

    session = cpu_session(out / "text_encoder.onnx")
    tokenizer = load_tokenizer(out / "tokenizer.json", 16)
    for texts in (["normal"], ["it is located at effusion .", "normal", "effusion effusion"]):
        feeds = tokenize(tokenizer, texts)
        onnx_out = run_session(session, feeds)["embeddings"]
        with torch.no_grad():
            ids, mask = torch.from_numpy(feeds["input_ids"]), torch.from_numpy(feeds["attention_mask"])
            torch_out = encoder(ids, mask)
        assert onnx_out.shape == (len(texts), 32)
        np.testing.assert_allclose(onnx_out, torch_out.numpy(), atol=1e-4, rtol=0)


def test_int8_bundle_records_its_measured_cosine(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny" / "2"
    encoder = _encoder(tiny_encoder_dir, pooling="cls")
    tokenizer_file = tiny_encoder_dir / "tokenizer.json"
    metadata = export_text_encoder(encoder, tokenizer_file, out, name="tiny", version="2",
                                   precision="int8")
    assert metadata["parity"]["int8_min_cosine"] >= 0.99
    written = json.loads((out / "metadata.json").read_text())
    assert written["precision"] == "int8" and written["pooling"] == "cls"
    assert TextEncoderMetadata.problems(out) == []


def test_a_tokenizer_that_disagrees_with_training_is_refused(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    encoder = _encoder(tiny_encoder_dir)
    other = Tokenizer(models.WordLevel({w: i for i, w in enumerate(reversed(_WORDS))}, unk_token="[UNK]"))
    other.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    other.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(RuntimeError, match="disagree"):
        export_text_encoder(encoder, tmp_path / "tokenizer.json", tmp_path / "b" / "1", name="b", version="1")


def test_book_agreement_is_one_for_books_built_by_the_same_encoder(
    tiny_encoder_dir: Path, fp32_bundle: Path
) -> None:
    texts = ["normal", "effusion", "it is located at effusion ."]
    book = _encoder(tiny_encoder_dir).encode(texts).numpy()  # (3, 32)
    assert book_agreement(fp32_bundle, texts, book) == pytest.approx(1.0, abs=1e-5)
    assert book_agreement(fp32_bundle, texts, book[::-1].copy()) < 0.99
