"""A tiny BERT (WordPiece tokenizer + 1-layer model) written to a directory, for hermetic tests."""

from __future__ import annotations

import string
from pathlib import Path

import torch


def write_tiny_bert(directory: Path, hidden_size: int = 32, seed: int = 0) -> Path:
    """Save a random 1-layer BertModel and a character-level WordPiece tokenizer; no downloads."""
    from transformers import BertConfig, BertModel, BertTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    letters = list(string.ascii_lowercase + string.digits)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "-", "(", ")"]
    vocab += letters + [f"##{c}" for c in letters]
    vocab_file = directory / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(vocab_file=str(vocab_file), do_lower_case=True)
    tokenizer.save_pretrained(str(directory))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(str(directory))
    return directory
