"""IU X-ray (Open-i) reports: text only, no images; real report text for the report parser's tests.

They cannot become manifest records (a record needs an image), so training never reads them; the
reader returns typed reports.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IUReport:
    """One Indiana University report with its structured MeSH tags."""

    report_id: str
    indication: str
    findings: str
    impression: str
    mesh_major: tuple[str, ...]

    @property
    def text(self) -> str:
        """FINDINGS + IMPRESSION, the part a report parser reads (as MeDSLIP's pretraining text)."""
        return " ".join(part for part in (self.findings, self.impression) if part).strip()


def read_iu_reports(root: Path) -> list[IUReport]:
    """All reports of `reports.jsonl`, in file order."""
    reports: list[IUReport] = []
    with (root / "reports.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            row = json.loads(line)
            reports.append(
                IUReport(
                    report_id=str(row["id"]),
                    indication=str(row.get("indication") or ""),
                    findings=str(row.get("findings") or ""),
                    impression=str(row.get("impression") or ""),
                    mesh_major=tuple(row.get("mesh_major") or ()),
                )
            )
    logger.info("iu-reports: %d reports", len(reports))
    return reports
