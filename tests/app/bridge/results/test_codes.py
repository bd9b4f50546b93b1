"""The code table holds only verified codes: in pydicom's PS3.16 dictionary, or checked on a named page."""

from __future__ import annotations

import io
from typing import cast

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.datadict import tag_for_keyword
from pydicom.sr._concepts_dict import concepts
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from app.bridge.results import codes as table
from app.bridge.results.source_modules import COPIED_KEYWORDS
from app.contract.vocabulary import SEGMENTATION_STRUCTURES
from tests.support.bridge.fakes import make_chest_dicom


def _meanings(code: Code) -> set[str]:
    """Every meaning pydicom's dictionary gives this scheme/value pair (empty: unknown code)."""
    found: set[str] = set()
    scheme = cast(dict[str, dict[str, tuple[str, list[int]]]], concepts.get(code.scheme_designator, {}))
    for entries in scheme.values():
        if code.value in entries:
            found.add(entries[code.value][0])
    return found


def _standard_codes() -> list[Code]:
    listed = [*table.FINDING_CODES.values(), table.PROBABILITY, table.CHEST_IMAGING]
    for site in [*table.ANATOMY_SITES.values(), *table.STRUCTURE_SITES.values()]:
        listed.append(site.code)
        if site.laterality is not None:
            listed.append(site.laterality)
    return listed


@pytest.mark.parametrize("code", _standard_codes(), ids=lambda c: f"{c.scheme_designator}-{c.value}")
def test_every_standard_code_is_verified_with_its_meaning(code: Code) -> None:
    """Either pydicom's PS3.16 dictionary holds it with this meaning, or a page was checked for it."""
    assert code.scheme_designator in {"SCT", "DCM", "RADLEX"}
    page = table.PAGE_VERIFIED.get((code.scheme_designator, code.value))
    if page is None:
        assert code.meaning in _meanings(code), _meanings(code)
    else:
        meaning, source = page
        assert code.meaning == meaning and source.startswith("https://")


#: Codes added after checking them one by one (SNOMED CT concept pages or pydicom's dictionary), with
#: the meaning each must carry; written out here so that a slip in the table cannot pass unnoticed.
ADDED_FINDINGS = {
    "pneumonia": ("SCT", "233604007", "Pneumonia"),
    "fracture": ("SCT", "125605004", "Fracture of bone"),
    "hernia": ("SCT", "52515009", "Hernia of abdominal cavity"),
    "aspiration": ("SCT", "68052005", "Pulmonary aspiration"),
    "chf": ("SCT", "42343007", "Congestive heart failure"),
    "stent": ("SCT", "65818007", "Stent"),
    "lesion": ("SCT", "52988006", "Lesion"),
    "disease": ("SCT", "64572001", "Disease"),
    "abnormality": ("SCT", "263654008", "Abnormal"),
    "finding": ("SCT", "404684003", "Finding"),
    "fluid": ("SCT", "32457005", "Body fluid"),
    "air": ("SCT", "15158005", "Air"),
    "sharply": ("DCM", "112137", "Sharply defined"),
    "obscure": ("DCM", "112152", "Silhouette sign"),
    "drainage": ("DCM", "112173", "Chest tube"),
    "consolidation": ("RADLEX", "RID43255", "consolidation"),
    "emphysema": ("RADLEX", "RID4799", "emphysema"),
}
ADDED_SITES = {
    "right_atrium": ("SCT", "73829009", "Right atrium"),
    "right_ventricle": ("SCT", "53085002", "Right ventricle"),
}


def _triple(code: Code) -> tuple[str, str, str]:
    return code.scheme_designator, code.value, code.meaning


def test_added_codes_carry_their_verified_meanings() -> None:
    assert {name: _triple(table.finding_code(name)) for name in ADDED_FINDINGS} == ADDED_FINDINGS
    assert {name: _triple(table.anatomy_site(name).code) for name in ADDED_SITES} == ADDED_SITES
    assert table.anatomy_site("right atrium").laterality is None  # the chamber names its side


def test_every_page_verified_code_is_used() -> None:
    used = {(c.scheme_designator, c.value) for c in _standard_codes()}
    assert set(table.PAGE_VERIFIED) <= used


def test_no_two_findings_share_a_code() -> None:
    """An SR reader finds a finding by its code; two names on one code would be indistinguishable."""
    keys = [(c.scheme_designator, c.value) for c in table.FINDING_CODES.values()]
    assert len(keys) == len(set(keys))


def test_codes_named_in_the_requirements_are_used() -> None:
    expected = {"pneumothorax": "36118008", "effusion": "60046008", "cardiomegaly": "287272002",
                "nodule": "27925004", "mass": "4147007", "edema": "19242006", "infiltrate": "112121"}
    assert {name: table.finding_code(name).value for name in expected} == expected
    assert (table.PROBABILITY.scheme_designator, table.PROBABILITY.value) == ("DCM", "122157")


def test_names_without_a_verified_code_are_private_and_stable() -> None:
    code = table.finding_code("atelectasis")
    assert code.scheme_designator == table.PRIVATE_SCHEME and code.meaning == "atelectasis"
    assert code == table.finding_code("atelectasis") and len(code.value) <= 16
    assert not table.anatomy_site("left_costophrenic").standard
    assert table.anatomy_site("left lower lung").code.value == "281394001"  # spaces or underscores


def test_every_segmented_structure_has_a_standard_code() -> None:
    assert set(table.STRUCTURE_SITES) == set(SEGMENTATION_STRUCTURES)


def test_copied_module_keywords_are_dicom_keywords() -> None:
    assert [k for k in COPIED_KEYWORDS if tag_for_keyword(k) is None] == []


def test_highdicom_cannot_write_a_parametric_map_over_a_projection_radiograph() -> None:
    """Why heatmaps stay Secondary Capture: the Parametric Map IOD needs patient 3-D plane geometry.

    If a later highdicom accepts this, revisit docs/bridge.md ("Why heatmaps are not Parametric Maps").
    """
    source = pydicom.dcmread(io.BytesIO(make_chest_dicom(rows=32, columns=24)))
    heat = np.zeros((1, 32, 24), np.float32)  # (frames, rows, columns)
    mapping = hd.pm.RealWorldValueMapping(
        lut_label="p", lut_explanation="attention", unit=codes.UCUM.NoUnits, value_range=(0.0, 1.0),
        slope=1.0, intercept=0.0,
    )
    with pytest.raises(RuntimeError, match="dimension index"):
        hd.pm.ParametricMap(
            [source], heat, hd.UID(), 9904, hd.UID(), 1, "m", "model", "1", "0", False, [mapping],
            voi_lut_transformations=[hd.VOILUTTransformation(window_center=0.5, window_width=1.0)],
        )
