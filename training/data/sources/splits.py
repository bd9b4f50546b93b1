"""Deterministic train/val assignment for sets that ship without an official split."""

from __future__ import annotations

import hashlib


def hash_split(key: str, val_fraction: float = 0.2) -> str:
    """'train' or 'val' from the SHA-256 of `key` (a file name): stable across machines and Python runs.

    Python's hash() is salted per process, so it cannot give a reproducible split; the first 8 bytes of
    SHA-256 read as an integer, divided by 2**64, is uniform on [0, 1) and identical everywhere.
    """
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    return "val" if position < val_fraction else "train"
