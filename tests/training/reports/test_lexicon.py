"""The packaged lexicon is consistent with the entity lists, and bad tables fail loudly."""

import json

import pytest

from app.contract.vocabulary import ANATOMY, PATHOLOGY
from training.reports.lexicon import LEXICON_PATH, build_lexicon, default_lexicon


def test_packaged_lexicon_names_only_known_entities() -> None:
    lexicon = default_lexicon()
    assert {v for v in lexicon.findings.values() if v is not None} <= set(PATHOLOGY)
    assert {a for names in lexicon.anatomy.values() for a in names} <= set(ANATOMY)
    assert lexicon.region_phrases[("lower", "lobe")] == "lower_lobe"
    assert lexicon.regions["lower_lobe"].for_side("left") == ("lower_left_lobe",)
    assert lexicon.regions["pleura"].for_side("both") == ("left_pleural", "right_pleural")


def test_typo_in_an_entity_name_is_rejected() -> None:
    raw = json.loads(LEXICON_PATH.read_text(encoding="utf-8"))
    raw["findings"]["effusion"] = "efusion"
    with pytest.raises(ValueError, match="efusion"):
        build_lexicon(raw)
