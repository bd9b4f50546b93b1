"""Readers that turn each public chest X-ray set into manifest records."""

from training.data.sources.covid import FRONTAL_VIEWS, read_covid_chestxray
from training.data.sources.jsrt import JSRT_STRUCTURES, read_jsrt_scr
from training.data.sources.kermany import read_kermany_pediatric
from training.data.sources.mimic import read_mimic_cxr
from training.data.sources.nih import read_nih_cxr14
from training.data.sources.splits import hash_split

__all__ = [
    "FRONTAL_VIEWS",
    "JSRT_STRUCTURES",
    "hash_split",
    "read_covid_chestxray",
    "read_jsrt_scr",
    "read_kermany_pediatric",
    "read_mimic_cxr",
    "read_nih_cxr14",
]
