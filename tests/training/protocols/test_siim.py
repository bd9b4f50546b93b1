"""SIIM-ACR reader and its relative column-major RLE, on a small tree around real chest DICOMs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.training.protocol_trees import write_siim_tree
from training.protocols.datasets import DatasetLayoutError
from training.protocols.siim import decode_masks, decode_rle, read_siim


def test_rle_is_relative_and_column_major() -> None:
    # positions 1, 2 then (gap 3 after the run) 6, counted down the columns of a 4 x 3 image
    expected = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 0, 0]], dtype=bool)
    assert np.array_equal(decode_rle("1 2 3 1", 4, 3), expected)
    assert not decode_rle("-1", 4, 3).any()
    with pytest.raises(DatasetLayoutError, match="odd"):
        decode_rle("1 2 3", 4, 3)
    with pytest.raises(DatasetLayoutError, match="past the end"):
        decode_rle("10 5", 4, 3)


@pytest.mark.shared_data
def test_reader_labels_films_and_unions_their_regions(shared_data: Path, tmp_path: Path) -> None:
    root = write_siim_tree(shared_data, tmp_path / "siim")
    data = read_siim(root)
    assert data.skipped == {"image file not found": 1}
    by_id = {Path(r.image).stem: r for r in data.records}
    assert {k: r.labels for k, r in by_id.items()} == {"1.2.9.1": {"Pneumothorax": 1},
                                                        "1.2.9.2": {"Pneumothorax": 0}}
    mask = decode_masks(data.rle_masks[by_id["1.2.9.1"].image], (1024, 1024))
    expected = np.zeros((1024, 1024), dtype=bool)
    expected[100:200, 300:400] = True
    expected[700:750, 600:610] = True
    assert np.array_equal(mask, expected)
    assert data.rle_masks[by_id["1.2.9.2"].image] == ()
