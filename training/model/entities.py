"""Entity vocabularies of MeDSLIP, in the query order of the released checkpoint.

Order matters: index i of PATHOLOGY is query i of the pathology stream, index j of ANATOMY is query j of
the anatomy stream (released code spells two names differently; these are the intended words).
"""

PATHOLOGY: tuple[str, ...] = (
    "normal", "clear", "sharp", "sharply", "unremarkable", "intact", "stable", "free", "effusion",
    "opacity", "pneumothorax", "edema", "atelectasis", "tube", "consolidation", "process",
    "abnormality", "enlarge", "tip", "low", "pneumonia", "line", "congestion", "catheter",
    "cardiomegaly", "fracture", "air", "tortuous", "lead", "disease", "calcification",
    "prominence", "device", "engorgement", "picc", "clip", "elevation", "expand", "nodule", "wire",
    "fluid", "degenerative", "pacemaker", "thicken", "marking", "scar", "hyperinflate", "blunt",
    "loss", "widen", "collapse", "density", "emphysema", "aerate", "mass", "crowd", "infiltrate",
    "obscure", "deformity", "hernia", "drainage", "distention", "shift", "stent", "pressure",
    "lesion", "finding", "borderline", "hardware", "dilation", "chf", "redistribution",
    "aspiration", "tail_abnorm_obs", "excluded_obs",
)

ANATOMY: tuple[str, ...] = (
    "trachea", "left_hilar", "right_hilar", "hilar_unspec", "left_pleural", "right_pleural",
    "pleural_unspec", "heart_size", "heart_border", "left_diaphragm", "right_diaphragm",
    "diaphragm_unspec", "retrocardiac", "lower_left_lobe", "upper_left_lobe", "lower_right_lobe",
    "middle_right_lobe", "upper_right_lobe", "left_lower_lung", "left_mid_lung", "left_upper_lung",
    "left_apical_lung", "left_lung_unspec", "right_lower_lung", "right_mid_lung",
    "right_upper_lung", "right_apical_lung", "right_lung_unspec", "lung_apices", "lung_bases",
    "left_costophrenic", "right_costophrenic", "costophrenic_unspec", "cardiophrenic_sulcus",
    "mediastinal", "spine", "clavicle", "rib", "stomach", "right_atrium", "right_ventricle",
    "aorta", "svc", "interstitium", "parenchymal", "cavoatrial_junction", "cardiopulmonary",
    "pulmonary", "lung_volumes", "unspecified", "other",
)

#: NIH ChestX-ray14 class -> pathology entity, for zero-shot evaluation on CXR14-style labels.
CXR14_TO_PATHOLOGY: dict[str, str] = {
    "Atelectasis": "atelectasis",
    "Cardiomegaly": "cardiomegaly",
    "Effusion": "effusion",
    "Infiltration": "infiltrate",
    "Mass": "mass",
    "Nodule": "nodule",
    "Pneumonia": "pneumonia",
    "Pneumothorax": "pneumothorax",
    "Consolidation": "consolidation",
    "Edema": "edema",
    "Emphysema": "emphysema",
    "Fibrosis": "tail_abnorm_obs",
    "Pleural_Thickening": "thicken",
    "Hernia": "hernia"
}

#: Anatomy query template of the release ("It is located at {name}. ", underscore name as is).
ANATOMY_TEMPLATE = "It is located at {name}. "


def anatomy_query_texts() -> list[str]:
    """Anatomy queries exactly as the released model was trained with."""
    return [ANATOMY_TEMPLATE.format(name=name) for name in ANATOMY]
