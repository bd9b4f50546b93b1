"""`medslip-parse-reports` prints the per-label table and micro-F1 as its last line."""

import json
import re
from pathlib import Path

import pytest

from training.reports.cli import main

#: micro-F1 measured on the 2,366 IU reports (docs/reports_parser.md: 0.908 with uncertain_as=1,
#: 0.918 with uncertain_as=0), minus a margin for harmless rule changes.
REAL_F1_FLOOR = 0.88
_LAST = re.compile(r"^micro-F1: (\d\.\d{3}) \(n_reports=(\d+),")


def _write_jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


def test_cli_on_tiny_jsonl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reports = _write_jsonl(tmp_path / "reports.jsonl", [
        {"id": "a", "findings": "Left basilar atelectasis.", "impression": "", "mesh_major":
         ["Pulmonary Atelectasis/base/left"]},
        {"id": "b", "findings": "The lungs are clear.", "impression": "No acute disease.",
         "mesh_major": ["normal"]},
        {"id": "c", "findings": "No pneumothorax.", "impression": "", "mesh_major": ["Pneumothorax"]},
    ])
    assert main(["--reports", str(reports)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["label", "precision", "recall", "f1", "support"]
    match = _LAST.match(lines[-1])
    assert match is not None, lines[-1]
    assert match.group(2) == "3"
    # tp=2 (atelectasis in a, normal in b); c: pneumothorax missed (fn) and c called normal (fp): 4/6
    assert float(match.group(1)) == pytest.approx(0.667, abs=1e-3)
    assert any(line.startswith("atelectasis ") for line in lines)


def test_cli_missing_file_exits_2(tmp_path: Path) -> None:
    assert main(["--reports", str(tmp_path / "absent.jsonl")]) == 2


def test_cli_malformed_line_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n", encoding="utf-8")
    assert main(["--reports", str(bad)]) == 2


@pytest.mark.shared_data
def test_cli_on_real_iu_reports(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reports = shared_data / "iu-reports" / "reports.jsonl"
    if not reports.is_file():
        pytest.skip("iu-reports/reports.jsonl is absent from the shared data")
    assert main(["--reports", str(reports)]) == 0
    match = _LAST.match(capsys.readouterr().out.strip().splitlines()[-1])
    assert match is not None
    assert int(match.group(2)) > 2000
    assert float(match.group(1)) >= REAL_F1_FLOOR
