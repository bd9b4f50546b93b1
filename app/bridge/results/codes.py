"""The bridge's code table: every finding, anatomy and structure name it writes, as a DICOM code.

Why a table: a PACS or AI-results viewer can only interpret standard codes. Order of preference:
SNOMED CT (SCT), then DICOM (DCM) or RadLex (RADLEX) where no SNOMED CT concept could be verified;
a name no standard covers gets a code in the private scheme `99MEDSLIP` (declared in each SR's
Coding Scheme Identification Sequence).

No code here is guessed. Each standard code is verified one of two ways, and
`tests/app/bridge/results/test_codes.py` checks both: it appears with this meaning in pydicom's code
dictionary (DICOM PS3.16 as shipped with pydicom), or it is listed in `PAGE_VERIFIED` with the
authoritative page (SNOMED International, a FHIR terminology server, a RadLex terminology service)
that shows the concept id with this preferred term, active. Names whose code could not be verified
either way stay private, also where a standard code probably exists (e.g. atelectasis): a wrong code
is worse than an honest private one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pydicom.sr.coding import Code

PRIVATE_SCHEME = "99MEDSLIP"
PRIVATE_SCHEME_NAME = "MeDSLIP model vocabulary (names without a verified standard code)"

RIGHT = Code("24028007", "SCT", "Right")
LEFT = Code("7771000", "SCT", "Left")
BILATERAL = Code("51440002", "SCT", "Bilateral")

PROBABILITY = Code("122157", "DCM", "Probability")
CHEST_IMAGING = Code("413815006", "SCT", "Chest imaging (procedure)")


@dataclass(frozen=True)
class Site:
    """An anatomic location and, where the name carries one, its laterality (a concept modifier)."""

    code: Code
    laterality: Code | None = None

    @property
    def standard(self) -> bool:
        return self.code.scheme_designator != PRIVATE_SCHEME


def _sct(value: str, meaning: str) -> Code:
    return Code(value, "SCT", meaning)


def _dcm(value: str, meaning: str) -> Code:
    return Code(value, "DCM", meaning)


#: Standard codes pydicom's dictionary does not hold: (scheme, value) -> (preferred term, the page that
#: shows the concept id with that term, active). Checked by hand; the test asserts each one.
PAGE_VERIFIED: dict[tuple[str, str], tuple[str, str]] = {
    ("SCT", "233604007"): (
        "Pneumonia",
        "https://docs.snomed.org/education/snomed-ct-education-editorial-guide/readme/authoring/"
        "domain-specific-modeling/clinical-finding-and-disorder/clinical-finding-and-disorder-modeling/"
        "specific-clinical-finding-and-disorder-modeling/pneumonia-vs-pneumonitis",
    ),
    ("SCT", "125605004"): (
        "Fracture of bone",
        "https://conf.spaces.snomed.org/wiki/spaces/SCTEMPLATES/pages/133993889/"
        "Fracture+of+bone+structure+disorder+-+v1.0",
    ),
    ("SCT", "52515009"): (
        "Hernia of abdominal cavity",
        "https://confluence.snomedtools.org/pages/viewpage.action?pageId=154250187",
    ),
    ("SCT", "68052005"): (
        "Pulmonary aspiration",
        "https://tx-dev.fhir.org/snomed/11000172109-20231115/?id=68052005&type=snomed",
    ),
    ("RADLEX", "RID43255"): (
        "consolidation",
        "https://testing.ehealthireland.ie/terminology/claml/ViewClass?"
        "classificationId=2.16.840.1.113883.6.256&code=RID43255",
    ),
    ("RADLEX", "RID4799"): ("emphysema", "https://www.cismef.org/page/detail/en/RAD_CO_RID4799"),
}


def _page(scheme: str, value: str) -> Code:
    """A code from `PAGE_VERIFIED`, with the preferred term recorded there."""
    meaning, _source = PAGE_VERIFIED[(scheme, value)]
    return Code(value, scheme, meaning)


#: Pathology entities (model vocabulary) with a verified standard code.
FINDING_CODES: dict[str, Code] = {
    "normal": _dcm("111286", "No abnormality"),
    "effusion": _sct("60046008", "Pleural effusion"),
    "opacity": _dcm("112001", "Opacity"),
    "pneumothorax": _sct("36118008", "Pneumothorax"),
    "edema": _sct("19242006", "Pulmonary edema"),
    "tube": _sct("83059008", "Tube"),
    "enlarge": _sct("260376009", "Enlarged"),
    "catheter": _sct("19923001", "Catheter"),
    "cardiomegaly": _sct("287272002", "Cardiomegaly"),
    "tortuous": _sct("386137000", "Tortuous"),
    "lead": _sct("360129009", "Cardiac pacemaker lead"),
    "calcification": _dcm("112063", "Abnormal calcifications"),
    "clip": _sct("77720000", "Clip"),
    "elevation": _sct("75540009", "Elevated"),
    "nodule": _sct("27925004", "Nodule"),
    "pacemaker": _sct("14106009", "Cardiac pacemaker"),
    "scar": _sct("12402003", "Scar tissue"),
    "blunt": _sct("428247006", "blunted"),
    "density": _dcm("112118", "Density"),
    "mass": _sct("4147007", "Mass"),
    "infiltrate": _dcm("112121", "Infiltrate"),
    "dilation": _sct("25322007", "dilatation"),
    "pneumonia": _page("SCT", "233604007"),
    "fracture": _page("SCT", "125605004"),  # the disorder; on a film: rib, clavicle, vertebra
    "hernia": _page("SCT", "52515009"),  # abdominal contents herniated into the chest (hiatal, ...)
    "aspiration": _page("SCT", "68052005"),
    "chf": _sct("42343007", "Congestive heart failure"),
    "stent": _sct("65818007", "Stent"),
    "lesion": _sct("52988006", "Lesion"),
    "disease": _sct("64572001", "Disease"),
    "abnormality": _sct("263654008", "Abnormal"),
    "finding": _sct("404684003", "Finding"),
    "fluid": _sct("32457005", "Body fluid"),
    "air": _sct("15158005", "Air"),
    "sharply": _dcm("112137", "Sharply defined"),  # Chest CAD border definition (CID 6120)
    "obscure": _dcm("112152", "Silhouette sign"),  # an obscured margin is the silhouette sign
    "drainage": _dcm("112173", "Chest tube"),
    # SNOMED CT has concepts for these, but none could be verified offline; RadLex until one is
    "consolidation": _page("RADLEX", "RID43255"),
    "emphysema": _page("RADLEX", "RID4799"),
}

_LUNG = _sct("39607008", "Lung")
_HILUM = _sct("46750007", "Hilum of lung")
_DIAPHRAGM = _sct("5798000", "Diaphragm")
_HEART = _sct("80891009", "Heart")
_LOWER_LOBE = _sct("90572001", "Lower lobe of lung")
_UPPER_LOBE = _sct("45653009", "Upper lobe of lung")
_UPPER_ZONE = _sct("281392002", "Upper zone of lung")
_MIDDLE_ZONE = _sct("281393007", "Middle zone of lung")
_LOWER_ZONE = _sct("281394001", "Lower zone of lung")
_APEX = _sct("86598002", "Apex of Lung")
_CLAVICLE = _sct("51299004", "Clavicle")

#: Anatomy entities (finding sites) with a verified standard code.
ANATOMY_SITES: dict[str, Site] = {
    "trachea": Site(_sct("44567001", "Trachea")),
    "left_hilar": Site(_HILUM, LEFT),
    "right_hilar": Site(_HILUM, RIGHT),
    "hilar_unspec": Site(_HILUM),
    "left_pleural": Site(_sct("53727004", "Left Pleura")),
    "right_pleural": Site(_sct("44788007", "Right Pleura")),
    "pleural_unspec": Site(_sct("3120008", "Pleura")),
    "heart_size": Site(_HEART),
    "heart_border": Site(_HEART),
    "left_diaphragm": Site(_DIAPHRAGM, LEFT),
    "right_diaphragm": Site(_DIAPHRAGM, RIGHT),
    "diaphragm_unspec": Site(_DIAPHRAGM),
    "lower_left_lobe": Site(_LOWER_LOBE, LEFT),
    "upper_left_lobe": Site(_UPPER_LOBE, LEFT),
    "lower_right_lobe": Site(_LOWER_LOBE, RIGHT),
    "middle_right_lobe": Site(_sct("72481006", "Middle lobe of right lung")),
    "upper_right_lobe": Site(_UPPER_LOBE, RIGHT),
    "left_lower_lung": Site(_LOWER_ZONE, LEFT),
    "left_mid_lung": Site(_MIDDLE_ZONE, LEFT),
    "left_upper_lung": Site(_UPPER_ZONE, LEFT),
    "left_apical_lung": Site(_APEX, LEFT),
    "left_lung_unspec": Site(_LUNG, LEFT),
    "right_lower_lung": Site(_LOWER_ZONE, RIGHT),
    "right_mid_lung": Site(_MIDDLE_ZONE, RIGHT),
    "right_upper_lung": Site(_UPPER_ZONE, RIGHT),
    "right_apical_lung": Site(_APEX, RIGHT),
    "right_lung_unspec": Site(_LUNG, RIGHT),
    "lung_apices": Site(_APEX, BILATERAL),
    "lung_bases": Site(_LOWER_ZONE, BILATERAL),
    "mediastinal": Site(_sct("72410000", "Mediastinum")),
    "spine": Site(_sct("421060004", "Spine")),
    "clavicle": Site(_CLAVICLE),
    "rib": Site(_sct("113197003", "Rib")),
    "stomach": Site(_sct("69695003", "Stomach")),
    "right_atrium": Site(_sct("73829009", "Right atrium")),
    "right_ventricle": Site(_sct("53085002", "Right ventricle")),
    "aorta": Site(_sct("15825003", "Aorta")),
    "svc": Site(_sct("48345005", "Superior vena cava")),
    "interstitium": Site(_sct("85293002", "Interstitial tissue")),
    "parenchymal": Site(_sct("91772007", "Parenchyma")),
    "pulmonary": Site(_LUNG),
}

#: The segmented structures of /segment (app.contract.bundle.SEGMENTATION_STRUCTURES), as SEG property types.
STRUCTURE_SITES: dict[str, Site] = {
    "right_lung": Site(_LUNG, RIGHT),
    "left_lung": Site(_LUNG, LEFT),
    "heart": Site(_HEART),
    "right_clavicle": Site(_CLAVICLE, RIGHT),
    "left_clavicle": Site(_CLAVICLE, LEFT),
}


def private_code(name: str) -> Code:
    """A name as a code of the private scheme; the value is a stable digest (CodeValue is 16 chars max)."""
    value = "MS" + hashlib.sha256(name.encode()).hexdigest()[:12].upper()
    return Code(value, PRIVATE_SCHEME, name[:64])


def finding_code(name: str) -> Code:
    """Standard code of a finding name, else its private code (also for free-text findings)."""
    return FINDING_CODES.get(name) or private_code(name)


def anatomy_site(name: str) -> Site:
    """Standard site of an anatomy name (the service writes them with `_` or spaces), else private."""
    key = name.strip().lower().replace(" ", "_")
    return ANATOMY_SITES.get(key) or Site(private_code(name))


def structure_site(name: str) -> Site:
    return STRUCTURE_SITES.get(name) or Site(private_code(name))
