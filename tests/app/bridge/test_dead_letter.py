"""Dead-letter operations: list, replay (exactly once, no second inference), purge, and the CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from app.bridge import dead_letter_cli
from app.bridge.dead_letter import Selection, list_entries, purge, replay, selection_for
from app.bridge.journal import InstanceState
from app.bridge.main import main
from app.bridge.spool import InstanceHeader, Spool
from tests.support.bridge.fakes import make_chest_dicom


def _dead(spool: Spool, *, study_uid: str, with_answers: bool) -> tuple[str, str]:
    """Store one instance and dead-letter it; returns (SOP Instance UID, key)."""
    data = make_chest_dicom(study_uid=study_uid)
    header = InstanceHeader.from_bytes(data)
    _, key = spool.store(data, header, ingress="test")
    if with_answers:
        spool.write_result(key, "inference.json", b"{}")
        spool.journal.transition(spool.journal.load(key), InstanceState.INFERRED)
    spool.dead_letter(spool.journal.load(key), "egress: association_failed", "egress")
    return header.sop_instance_uid, key


def test_list_filters_by_study_instance_and_key(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    uid_a, key_a = _dead(spool, study_uid="1.2.3", with_answers=False)
    _, key_b = _dead(spool, study_uid="1.2.4", with_answers=False)
    assert {e.key for e in list_entries(spool)} == {key_a, key_b}
    assert [e.key for e in list_entries(spool, selection_for(spool, ["1.2.4"], [], []))] == [key_b]
    assert [e.key for e in list_entries(spool, selection_for(spool, [], [uid_a], []))] == [key_a]
    assert [e.key for e in list_entries(spool, selection_for(spool, [], [], [key_b[:16]]))] == [key_b]
    [entry] = list_entries(spool, Selection(instance_keys=frozenset({key_a})))
    assert (entry.category, entry.has_instance) == ("egress:association_failed", True)


def test_replay_resumes_after_the_saved_answers_and_only_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    _, inferred = _dead(spool, study_uid="1.2.3", with_answers=True)
    _, fresh = _dead(spool, study_uid="1.2.3", with_answers=False)
    assert sorted(replay(spool, Selection())) == sorted([inferred, fresh])
    assert spool.journal.load(inferred).state is InstanceState.INFERRED  # no second inference
    assert spool.journal.load(fresh).state is InstanceState.RECEIVED
    assert spool.results_dir(inferred).joinpath("inference.json").exists()
    assert {r.key for r in spool.journal.load_pending()} == {inferred, fresh}
    assert not (spool.journal.finished_dir / f"{inferred}.json").exists()
    assert spool.journal.load(inferred).history[-1]["event"] == "replayed"
    assert list_entries(spool) == [] and replay(spool, Selection()) == []  # nothing left to replay


def test_purge_deletes_files_but_keeps_the_record(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    _, key = _dead(spool, study_uid="1.2.3", with_answers=False)
    assert purge(spool, Selection()) == [key]
    assert not (spool.dead_letter_dir / key).exists()
    assert spool.journal.load(key).state is InstanceState.DEAD_LETTER
    assert spool.dead_letter_counts() == {}


def test_cli_lists_replays_and_refuses_unfiltered_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEDSLIP_BRIDGE_SPOOL_DIR", str(tmp_path))
    levels: list[str] = []  # the CLI configures logging; keep the test process's handlers untouched
    monkeypatch.setattr(dead_letter_cli, "configure_logging", levels.append)
    spool = Spool(tmp_path)
    uid, key = _dead(spool, study_uid="1.2.3", with_answers=False)
    out = io.StringIO()
    assert dead_letter_cli.run(["list"], out) == 0
    [line] = out.getvalue().splitlines()
    assert json.loads(line)["key"] == key and uid not in line  # hashed keys only
    assert dead_letter_cli.run(["purge"], io.StringIO()) == 2  # no filter, no --all
    assert "--all" in capsys.readouterr().err
    assert main(["dead-letter", "replay", "--instance", uid]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {
        "action": "replay", "count": 1, "keys": [key]
    }
    assert spool.journal.load(key).state is InstanceState.RECEIVED
    assert levels == ["INFO"] * 3
