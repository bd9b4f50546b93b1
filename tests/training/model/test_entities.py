"""The entity vocabularies must stay in the released checkpoint's query order."""

import json
from pathlib import Path

import pytest

from app.contract.vocabulary import ANATOMY, PATHOLOGY
from training.model.entities import anatomy_query_texts


def test_entities_match_the_shared_reference(shared_data: Path) -> None:
    reference_file = shared_data.parent / "docs" / "medslip_entities.json"
    if not reference_file.is_file():
        pytest.skip("../shared/docs/medslip_entities.json is absent")
    reference = json.loads(reference_file.read_text())
    assert list(PATHOLOGY) == reference["pathology"]
    assert list(ANATOMY) == reference["anatomy"]


def test_vocabulary_sizes_and_anatomy_template() -> None:
    assert (len(PATHOLOGY), len(ANATOMY)) == (75, 51)
    assert len(set(PATHOLOGY)) == 75 and len(set(ANATOMY)) == 51
    assert anatomy_query_texts()[0] == "It is located at trachea. "
