"""`medslip-parse-reports`: score the rule-based parser against IU MeSH tags.

Prints a per-label precision / recall / F1 / support table and, as the last line,
`micro-F1: 0.xxx (n_reports=..., ...)`, so that scripts can `tail -n1` it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from training.reports.mesh import default_mesh_map
from training.reports.parser import PRESENT, parse_report
from training.reports.scoring import format_score, score_reports

logger = logging.getLogger(__name__)

_REPO = Path(__file__).resolve().parents[2]
_REPORTS_IN_SHARED_DATA = Path("iu-reports") / "reports.jsonl"


def default_reports_path() -> Path:
    """IU reports in MEDSLIP_SHARED_DATA, else in ../shared/data beside the repository."""
    env = os.environ.get("MEDSLIP_SHARED_DATA")
    data = Path(env) if env else _REPO.parent / "shared" / "data"
    return data / _REPORTS_IN_SHARED_DATA


def read_jsonl(path: Path) -> Iterator[dict[str, object]]:
    """Records of a JSON-lines file; blank lines are skipped."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path.name}: line {number} is not JSON ({error.msg})") from error


def build_arg_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="medslip-parse-reports", description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=Path, default=None,
                        help="JSONL with findings, impression, mesh_major (default: IU reports)")
    parser.add_argument("--uncertain-as", type=int, choices=(1, 0, -1), default=PRESENT,
                        help="label given to hedged findings (default 1, as in MeDSLIP pretraining)")
    parser.add_argument("--log-level", default="WARNING")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Score the parser; exit 2 when the reports file is missing or malformed."""
    args = build_arg_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    path: Path = args.reports or default_reports_path()
    if not path.is_file():
        logger.error("reports file not found: %s", path)
        return 2
    try:
        score = score_reports(read_jsonl(path), partial(parse_report, uncertain_as=args.uncertain_as),
                              default_mesh_map())
    except ValueError as error:
        logger.error("%s", error)
        return 2
    if score.unmapped_terms:
        logger.info("unmapped MeSH terms (not scored): %s",
                    dict(sorted(score.unmapped_terms.items(), key=lambda kv: -kv[1])))
    sys.stdout.write(format_score(score) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
