"""Published peer numbers printed beside this project's, each with where it comes from.

Only numbers with a source anyone can open are listed; none is estimated or read off a figure. `status`
says how the number was obtained: "copied from paper" (the paper's table, cited), "reproduced by others"
(a public third-party run of the released checkpoint, cited) or "reproduced here" (this project ran it:
those rows come from the report itself, never from this file). Empty cells mean no citable number.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["copied from paper", "reproduced by others", "reproduced here"]


@dataclass(frozen=True)
class PeerResult:
    """One published row: a method's figures on one benchmark and task."""

    method: str
    dataset: str  # training.protocols.datasets.DATASETS
    task: str  # "zero-shot classification" | "zero-shot grounding" | "fine-tuning"
    metrics: dict[str, float] = field(default_factory=dict)  # auroc / f1 / acc (macro means)
    status: Status = "copied from paper"
    citation: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


MEDKLIP_PAPER = ("Wu et al., MedKLIP: Medical Knowledge Enhanced Language-Image Pre-Training in Radiology, "
                 "ICCV 2023 (arXiv:2301.02228), zero-shot CXR14 table; the figures as quoted in "
                 "https://github.com/MediaBrain-SJTU/MedKLIP/issues/12")
MEDKLIP_RELEASED = ("https://github.com/MediaBrain-SJTU/MedKLIP/issues/12 and /issues/17: the released "
                    "checkpoint_final.pth with the repository's test.py and CXR14 test.csv")
KAD_RELEASED = ("https://github.com/xiaoman-zhang/KAD/issues/19: zero-shot CXR14 mean AUC of the released "
                "KAD model as run by a user (0.7029 by another user in the same thread)")

PEERS: tuple[PeerResult, ...] = (
    PeerResult("MedKLIP (paper)", "cxr14", "zero-shot classification",
               {"auroc": 0.7676, "f1": 0.2525, "acc": 0.8619}, "copied from paper", MEDKLIP_PAPER),
    PeerResult("MedKLIP (released checkpoint)", "cxr14", "zero-shot classification",
               {"auroc": 0.7233, "f1": 0.2541, "acc": 0.7940}, "reproduced by others", MEDKLIP_RELEASED),
    PeerResult("KAD (released checkpoint)", "cxr14", "zero-shot classification",
               {"auroc": 0.7033}, "reproduced by others", KAD_RELEASED),
)


def peers_for(task: str) -> list[PeerResult]:
    return [peer for peer in PEERS if peer.task == task]
