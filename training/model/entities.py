"""The anatomy query texts of MeDSLIP, as the released model was trained with them.

The entity vocabularies themselves (`PATHOLOGY`, `ANATOMY`, `CXR14_TO_PATHOLOGY`) are part of the
contract: `app/contract/vocabulary.py`.
"""

from app.contract.vocabulary import ANATOMY

#: Anatomy query template of the release ("It is located at {name}. ", underscore name as is).
ANATOMY_TEMPLATE = "It is located at {name}. "


def anatomy_query_texts() -> list[str]:
    """Anatomy queries exactly as the released model was trained with."""
    return [ANATOMY_TEMPLATE.format(name=name) for name in ANATOMY]
