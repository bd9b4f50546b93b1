"""Spool and journal: durable ingress, duplicate detection, crash recovery, dead letter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.bridge.durable import atomic_write
from app.bridge.journal import InstanceState
from app.bridge.spool import InstanceHeader, Spool, StoreOutcome
from tests.support.bridge.fakes import make_chest_dicom


def _store(spool: Spool, **kwargs: object) -> tuple[StoreOutcome, str, bytes]:
    data = make_chest_dicom(**kwargs)  # type: ignore[arg-type]
    outcome, key = spool.store(data, InstanceHeader.from_bytes(data), ingress="test")
    return outcome, key, data


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out" / "file.bin"
    atomic_write(target, b"first", tmp_path / "tmp")
    atomic_write(target, b"second", tmp_path / "tmp")
    assert target.read_bytes() == b"second"
    assert list((tmp_path / "tmp").iterdir()) == []


def test_atomic_write_failure_keeps_old_content(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    atomic_write(target, b"old", tmp_path / "tmp")
    with pytest.raises(TypeError):
        atomic_write(target, "not bytes", tmp_path / "tmp")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert list((tmp_path / "tmp").iterdir()) == []


def test_store_writes_instance_and_journal_with_hashed_names(tmp_path: Path) -> None:
    spool = Spool(tmp_path, clock=lambda: 100.0)
    outcome, key, data = _store(spool, view="AP")
    assert outcome is StoreOutcome.STORED
    assert spool.instance_path(key).read_bytes() == data
    record = spool.journal.load(key)
    assert record.state is InstanceState.RECEIVED
    assert record.view_position == "AP"
    assert record.received_at == 100.0
    header = InstanceHeader.from_bytes(data)
    for path in tmp_path.rglob("*"):
        assert header.sop_instance_uid not in path.name and header.study_instance_uid not in path.name
    assert header.sop_instance_uid not in spool.journal.path(key).read_text()


def test_second_copy_of_an_instance_is_a_duplicate_and_not_requeued(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    _, key, data = _store(spool)
    record = spool.journal.transition(spool.journal.load(key), InstanceState.DONE)
    outcome, same_key = spool.store(data, InstanceHeader.from_bytes(data), ingress="test")
    assert outcome is StoreOutcome.DUPLICATE and same_key == key
    assert spool.journal.load(key).state is InstanceState.DONE == record.state


def test_recover_adopts_unjournaled_files_and_drops_partial_writes(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    data = make_chest_dicom()
    key = spool.instance_key(InstanceHeader.from_bytes(data).sop_instance_uid)
    spool.instance_path(key).write_bytes(data)  # crash after the file, before the journal
    (spool.tmp_dir / "x.part").write_bytes(b"partial")
    restarted = Spool(tmp_path)
    assert restarted.recover() == 1
    assert restarted.journal.load(key).state is InstanceState.RECEIVED
    assert not (spool.tmp_dir / "x.part").exists()
    assert restarted.recover() == 0  # idempotent


def test_dead_letter_moves_file_and_writes_reason(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    _, key, data = _store(spool)
    spool.write_result(key, "inference.json", b"{}")
    record = spool.dead_letter(spool.journal.load(key), "inference: HTTP 503 after 4 attempts", "inference")
    assert record.state is InstanceState.DEAD_LETTER
    folder = spool.dead_letter_dir / key
    assert (folder / "instance.dcm").read_bytes() == data
    assert json.loads((folder / "reason.json").read_text())["reason"].startswith("inference: HTTP 503")
    assert (folder / "results" / "inference.json").exists()
    assert not spool.instance_path(key).exists()


def test_journal_history_and_depth(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    _, first, _ = _store(spool)
    _store(spool)
    assert spool.depth() == 2
    record = spool.journal.transition(spool.journal.load(first), InstanceState.INFERRED)
    spool.journal.transition(record, InstanceState.DONE)
    reloaded = Spool(tmp_path).journal.load(first)
    assert [h["state"] for h in reloaded.history] == ["inferred", "done"]
    assert spool.depth() == 1


def test_corrupt_journal_entry_is_skipped_not_fatal(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    _store(spool)
    (spool.journal.directory / "broken.json").write_text("{not json")
    assert len(spool.journal.load_all()) == 1


def test_finished_entries_leave_the_pending_scan_but_still_catch_duplicates(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    _, key, data = _store(spool)
    spool.journal.transition(spool.journal.load(key), InstanceState.SKIPPED, reason="lateral_view")
    assert spool.journal.load_pending() == []
    assert (spool.journal.finished_dir / f"{key}.json").exists()
    assert spool.store(data, InstanceHeader.from_bytes(data), ingress="test")[0] is StoreOutcome.DUPLICATE


def test_recover_archives_final_entries_left_pending_by_a_crash(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    _, key, _ = _store(spool)
    record = spool.journal.load(key)
    record.state = InstanceState.DONE
    (spool.journal.directory / f"{key}.json").write_bytes(record.to_json())  # crash before the rename
    assert spool.depth() == 0  # already final: never processed again
    Spool(tmp_path).recover()
    assert not (spool.journal.directory / f"{key}.json").exists()
    assert spool.journal.load(key).state is InstanceState.DONE


def test_a_resent_dead_lettered_instance_is_requeued_not_dropped(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    _, key, data = _store(spool)
    spool.dead_letter(spool.journal.load(key), "egress: association_failed", "egress")
    assert spool.dead_letter_counts() == {"egress:association_failed": 1}
    outcome, again = spool.store(data, InstanceHeader.from_bytes(data), ingress="cstore")
    assert (outcome, again) == (StoreOutcome.REQUEUED, key)
    record = spool.journal.load(key)
    assert record.state is InstanceState.RECEIVED and record.attempts == 0
    assert record.history[-1]["event"] == "requeued"
    assert not (spool.journal.finished_dir / f"{key}.json").exists()
    assert not (spool.dead_letter_dir / key).exists() and spool.dead_letter_counts() == {}
    assert spool.instance_path(key).read_bytes() == data
    # now pending again: a further copy is a plain duplicate
    assert spool.store(data, InstanceHeader.from_bytes(data), ingress="cstore")[0] is StoreOutcome.DUPLICATE


def test_backlog_counts_pending_steps_retries_and_age(tmp_path: Path) -> None:
    now = [1000.0]
    spool = Spool(tmp_path, clock=lambda: now[0])
    _store(spool)
    now[0] += 30
    _, second, _ = _store(spool)
    spool.journal.transition(spool.journal.load(second), InstanceState.BUILT)
    record = spool.journal.load(second)
    spool.journal.transition(record, InstanceState.BUILT, attempts=2, first_failure_at=now[0])
    now[0] += 10
    backlog = spool.backlog()
    assert (backlog.pending, backlog.by_state, backlog.retrying) == (2, {"received": 1, "built": 1}, 1)
    assert backlog.oldest_seconds == 40.0
