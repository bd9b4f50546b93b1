"""End to end against a real Orthanc: C-STORE routing and STOW-RS in, SR + SEG + heatmap back, crash-safe.

Orthanc (with the DICOMweb plugin), the inference service (tiny bundle) and the bridge run as separate
processes on loopback. Beyond the round trip: findings read back with highdicom by their SNOMED CT
codes, source references in each object and in Orthanc's WADO-RS metadata, an Orthanc outage longer
than 20 s survived with results delivered once, and a dead-letter replay processed once. Bounded:
every wait has a timeout; the module takes about two and a half minutes on 2 busy cores.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pydicom
import pytest
from pydicom.uid import (
    ComprehensiveSRStorage,
    SecondaryCaptureImageStorage,
    SegmentationStorage,
    generate_uid,
)

from app.bench_load import free_port
from app.bridge.dicomweb import build_multipart_related
from app.bridge.egress import StowEgress
from app.bridge.journal import InstanceRecord, InstanceState
from app.bridge.results import build_results
from app.bridge.results.context import SERIES_NUMBERS, complete_source
from app.bridge.spool import Spool
from tests.support.bridge.dciodvfy import coding_warnings, dciodvfy_lines, private_scheme_uses
from tests.support.bridge.e2e import (
    BridgeConfig,
    Orthanc,
    Process,
    console_script,
    missing_tools,
    restart_orthanc,
    start_bridge,
    start_orthanc,
    start_service,
    wait_until,
)
from tests.support.bridge.fakes import fake_inference, make_chest_dicom
from tests.support.bridge.sr_values import by_code, sr_finding_sites, sr_probabilities

pytestmark = [pytest.mark.e2e, pytest.mark.shared_data]

CSTORE_FILES = (
    "siim_chest_jpeg_baseline.dcm",  # CR, JPEG baseline, PA
    "highdicom_dx_image.dcm",  # DX MONOCHROME1, no ViewPosition
    "wg04_RG1_J2KI.dcm",  # CR 15-bit JPEG 2000 lossy, PA
    "wg04_RG2_RLE.dcm",  # a hip: refused by the service as not_chest
)
STOW_FILE = "nih_gcp_DX_nofinding.dcm"
HIP_FILE = "wg04_RG2_RLE.dcm"
RESULT_SERIES_NUMBERS = set(SERIES_NUMBERS.values())  # the sources include Secondary Captures too
RESULT_CLASSES = {ComprehensiveSRStorage, SegmentationStorage, SecondaryCaptureImageStorage}


@dataclass
class Stack:
    work: Path
    data: Path
    orthanc: Orthanc
    service: Process
    service_url: str
    bridge_config: BridgeConfig
    bridge: Process
    logs: list[Path]
    sent: list[bytes] = field(default_factory=list)  # every DICOM file the run sent anywhere


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Iterator[Stack]:
    missing = missing_tools()
    if missing:
        pytest.skip(
            f"end-to-end test needs {', '.join(missing)} (Debian: orthanc orthanc-dicomweb dicom3tools)"
        )
    from tests.fixtures.tiny_bundle import build_tiny_bundle

    work = tmp_path_factory.mktemp("e2e")
    bundle = build_tiny_bundle(work / "model_store")
    service, service_url = start_service(work, bundle)
    bridge_dicom_port = free_port()
    orthanc = start_orthanc(work, {"bridge": bridge_dicom_port})
    config = BridgeConfig(
        spool_dir=work / "spool",
        service_url=service_url,
        model_name=bundle.parent.name,
        pacs_port=orthanc.dicom_port,
        dicom_port=bridge_dicom_port,
    )
    bridge = start_bridge(config, work / "bridge.log")
    stack = Stack(work, shared_data / "dicom", orthanc, service, service_url, config, bridge, [])
    stack.logs += [work / "bridge.log", work / "service.log", work / "orthanc.log"]
    try:
        yield stack
    finally:
        for process in (bridge, service, orthanc.process):
            process.stop()


def _records(spool_dir: Path) -> list[InstanceRecord]:
    return Spool(spool_dir).journal.load_all()


def _all_final(spool_dir: Path, expected: int) -> bool:
    records = _records(spool_dir)
    return len(records) == expected and all(r.state.terminal for r in records)


def _result_instances(orthanc: Orthanc, study_uid: str) -> dict[str, list[str]]:
    """SOP class -> SOP Instance UIDs of the bridge's result objects in the study (its own series)."""
    found: dict[str, list[str]] = {}
    for item in orthanc.study_instances(study_uid):
        sop_class = item["00080016"]["Value"][0]
        series_number = int((item.get("00200011", {}).get("Value") or [0])[0])
        if sop_class in RESULT_CLASSES and series_number in RESULT_SERIES_NUMBERS:
            found.setdefault(sop_class, []).append(item["00080018"]["Value"][0])
    return found


def _service_scores(stack: Stack, data: bytes) -> dict[str, float]:
    response = httpx.post(
        f"{stack.service_url}/classify",
        content=data,
        headers={"Content-Type": "application/dicom"},
        timeout=60,
    )
    response.raise_for_status()
    return {f["name"]: f["score"] for f in response.json()["findings"]}


def _identifiers(data: bytes) -> set[str]:
    """Patient / study identifiers of a source file that must never appear in a log."""
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    values = {str(ds.get(k, "")) for k in ("PatientName", "PatientID", "AccessionNumber", "PatientBirthDate")}
    values |= {str(ds.get(k, "")) for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")}
    values |= set(str(ds.get("PatientName", "")).split("^"))
    return {value for value in values if len(value) >= 5}


def test_cstore_and_stow_studies_come_back_as_sr_seg_and_heatmap(stack: Stack, tmp_path: Path) -> None:
    sources = {name: (stack.data / name).read_bytes() for name in (*CSTORE_FILES, STOW_FILE)}
    lateral = _copy_with_new_uids(sources[CSTORE_FILES[0]], generate_uid(), view_position="LL")
    stack.sent += [*sources.values(), lateral]
    ids = [stack.orthanc.upload(sources[name]) for name in CSTORE_FILES] + [stack.orthanc.upload(lateral)]
    stack.orthanc.send_to_modality("bridge", ids)  # Orthanc routes the study to the bridge by C-STORE
    body, content_type = build_multipart_related([sources[STOW_FILE]])
    stow = httpx.post(
        f"http://127.0.0.1:{stack.bridge_config.http_port}/studies",
        content=body,
        headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
        timeout=30,
    )
    assert stow.status_code == 200, stow.text
    stack.orthanc.upload(sources[STOW_FILE])  # the PACS holds the source study too

    wait_until(
        lambda: _all_final(stack.bridge_config.spool_dir, len(sources) + 1), 120, "all instances final"
    )
    records = _records(stack.bridge_config.spool_dir)
    assert {r.ingress for r in records} == {"cstore", "stow"}
    assert sorted((r.state, r.reason) for r in records if r.state is not InstanceState.DONE) == [
        (InstanceState.REFUSED, "not_chest"),  # the hip: recorded once, not retried
        (InstanceState.SKIPPED, "lateral_view"),  # recorded, never sent to the model
    ]
    lateral_study = pydicom.dcmread(io.BytesIO(lateral), stop_before_pixels=True).StudyInstanceUID
    assert _result_instances(stack.orthanc, lateral_study) == {}

    for name, data in sources.items():
        source = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        if name == HIP_FILE:
            assert _result_instances(stack.orthanc, source.StudyInstanceUID) == {}
            continue
        results = _wait_for_results(stack.orthanc, source.StudyInstanceUID, count=1)
        expected_scores = _service_scores(stack, data)
        for sop_class, [uid] in results.items():
            result = pydicom.dcmread(io.BytesIO(stack.orthanc.instance_file(uid)))
            assert result.StudyInstanceUID == source.StudyInstanceUID
            assert result.SeriesInstanceUID != source.SeriesInstanceUID
            valid = complete_source(source)  # the source less values its VR forbids (e.g. age "62")
            for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge",
                            "OtherPatientIDs", "AccessionNumber", "StudyDescription"):
                assert str(result.get(keyword, "")) == str(valid.get(keyword, "")), keyword
            assert _referenced_sources(result) == {source.SOPInstanceUID}, (name, sop_class)
            lines = dciodvfy_lines(result, tmp_path)
            assert [line for line in lines if line.startswith("Error")] == [], (name, sop_class)
            assert [line for line in lines if "Laterality" in line] == [], (name, sop_class)
            # the only coding warnings name the declared private scheme (names without a verified code):
            # one per private code written, none for any standard code
            assert all("<99MEDSLIP>" in line for line in coding_warnings(lines)), (name, sop_class)
            assert len(coding_warnings(lines)) == private_scheme_uses(result), (name, sop_class)
            if sop_class == ComprehensiveSRStorage:
                # read back with highdicom, each finding found by its code: SNOMED CT where one exists
                assert sr_probabilities(result) == pytest.approx(by_code(expected_scores), abs=1e-5)
                assert sr_probabilities(result)[("SCT", "36118008")] == pytest.approx(
                    expected_scores["pneumothorax"], abs=1e-5
                )
                assert set(sr_finding_sites(result)) == set(by_code(expected_scores))  # every site
            if sop_class == SecondaryCaptureImageStorage:
                assert "AI-GENERATED" in result.ImageComments
        _assert_wado_metadata_references(stack.orthanc, source)


def _referenced_sources(result: pydicom.Dataset) -> set[str]:
    """SOP Instance UIDs an object names as its source, where its IOD puts them."""
    if result.SOPClassUID == ComprehensiveSRStorage:
        series = result.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
        return {str(item.ReferencedSOPInstanceUID) for s in series for item in s.ReferencedSOPSequence}
    uids = {str(item.ReferencedSOPInstanceUID) for item in result.SourceImageSequence}
    if result.SOPClassUID == SecondaryCaptureImageStorage:  # also Referenced Image Sequence
        assert {str(i.ReferencedSOPInstanceUID) for i in result.ReferencedImageSequence} == uids
    return uids


def _assert_wado_metadata_references(orthanc: Orthanc, source: pydicom.Dataset) -> None:
    """What a DICOMweb viewer (OHIF) reads: the three objects and their references in WADO-RS metadata."""
    found: dict[str, set[str]] = {}
    for item in orthanc.study_metadata(source.StudyInstanceUID):
        sop_class = item["00080016"]["Value"][0]
        series_number = int((item.get("00200011", {}).get("Value") or [0])[0])
        if sop_class not in RESULT_CLASSES or series_number not in RESULT_SERIES_NUMBERS:
            continue
        if sop_class == ComprehensiveSRStorage:
            evidence = item["0040A375"]["Value"][0]["00081115"]["Value"][0]["00081199"]["Value"]
        else:
            evidence = item["00082112"]["Value"]  # Source Image Sequence
        found[sop_class] = {ref["00081155"]["Value"][0] for ref in evidence}
    assert found == {sop_class: {source.SOPInstanceUID} for sop_class in RESULT_CLASSES}


def _wait_for_results(orthanc: Orthanc, study_uid: str, count: int) -> dict[str, list[str]]:
    """Result objects of a study once Orthanc holds `count` of each kind (SR, SEG, heatmap)."""

    def complete() -> dict[str, list[str]] | None:
        found = _result_instances(orthanc, study_uid)
        return (
            found if {k: len(v) for k, v in found.items()} == dict.fromkeys(RESULT_CLASSES, count) else None
        )

    result: dict[str, list[str]] = wait_until(complete, 60, "result objects in Orthanc")
    return result


def _copy_with_new_uids(data: bytes, study_uid: str, view_position: str | None = None) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    if view_position is not None:
        ds.ViewPosition = view_position
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_sigkill_mid_study_then_restart_processes_every_instance_exactly_once(stack: Stack) -> None:
    study_uid = generate_uid()
    source = (stack.data / "siim_chest_jpeg_baseline.dcm").read_bytes()
    copies = [_copy_with_new_uids(source, study_uid) for _ in range(3)]
    stack.sent += copies
    closed_port = free_port()  # the PACS is "down" for the first run: results pile up as BUILT
    config = BridgeConfig(
        spool_dir=stack.work / "crash-spool",
        service_url=stack.service_url,
        model_name=stack.bridge_config.model_name,
        pacs_port=closed_port,
        stable_seconds=0.5,
    )
    first = start_bridge(config, stack.work / "bridge-crash-1.log")
    stack.logs.append(stack.work / "bridge-crash-1.log")
    body, content_type = build_multipart_related(copies[:2])
    url = f"http://127.0.0.1:{config.http_port}/studies/{study_uid}"
    assert (
        httpx.post(url, content=body, headers={"Content-Type": content_type}, timeout=30).status_code == 200
    )
    wait_until(
        lambda: [r.state for r in _records(config.spool_dir)] == [InstanceState.BUILT] * 2,
        60,
        "first two instances inferred and built",
    )
    first.kill()  # SIGKILL: no shutdown hook runs

    config.pacs_port = stack.orthanc.dicom_port
    second = start_bridge(config, stack.work / "bridge-crash-2.log")
    stack.logs.append(stack.work / "bridge-crash-2.log")
    try:
        body, content_type = build_multipart_related(copies[1:])  # the PACS re-sends one of them
        assert (
            httpx.post(url, content=body, headers={"Content-Type": content_type}, timeout=30).status_code
            == 200
        )
        wait_until(lambda: _all_final(config.spool_dir, 3), 90, "all three instances done after restart")
    finally:
        second.stop()
    for record in _records(config.spool_dir):
        assert record.state is InstanceState.DONE
        entered = [step["state"] for step in record.history if step["event"] == "entered"]
        assert entered == ["inferred", "built", "done"]  # each step exactly once, retries aside
    _wait_for_results(stack.orthanc, study_uid, count=3)  # one of each per instance, no duplicates
    assert {k: len(v) for k, v in _result_instances(stack.orthanc, study_uid).items()} == dict.fromkeys(
        RESULT_CLASSES, 3
    )


def test_stow_egress_to_orthanc_dicomweb_reports_each_instance_stored(stack: Stack) -> None:
    """The other egress path: STOW-RS to a real DICOMweb server, per-instance status checked."""
    source = pydicom.dcmread(io.BytesIO(make_chest_dicom(rows=48, columns=40)))
    objects = build_results(source, fake_inference(40, 48), "test", max_heatmaps=1)
    datasets = [pydicom.dcmread(io.BytesIO(_encode(o.dataset))) for o in objects]
    egress = StowEgress(f"{stack.orthanc.http_url}/dicom-web")
    try:
        status = egress.send(datasets)
    finally:
        egress.close()
    assert status == {str(ds.SOPInstanceUID): None for ds in datasets}
    _wait_for_results(stack.orthanc, str(source.StudyInstanceUID), count=1)


def _stow_to_bridge(config: BridgeConfig, data: bytes) -> None:
    body, content_type = build_multipart_related([data])
    url = f"http://127.0.0.1:{config.http_port}/studies"
    response = httpx.post(url, content=body, headers={"Content-Type": content_type}, timeout=30)
    assert response.status_code == 200


def _health(config: BridgeConfig) -> dict[str, object]:
    body: dict[str, object] = httpx.get(f"http://127.0.0.1:{config.http_port}/health", timeout=5).json()
    return body


def _key_of(spool_dir: Path, data: bytes) -> str:
    header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    return Spool(spool_dir).instance_key(str(header.SOPInstanceUID))


def test_an_orthanc_outage_longer_than_20_s_is_survived_and_results_arrive_once(stack: Stack) -> None:
    source = _copy_with_new_uids((stack.data / "siim_chest_jpeg_baseline.dcm").read_bytes(), generate_uid())
    stack.sent.append(source)
    study_uid = pydicom.dcmread(io.BytesIO(source), stop_before_pixels=True).StudyInstanceUID
    key = _key_of(stack.bridge_config.spool_dir, source)
    stack.orthanc.process.stop()  # the PACS goes down (maintenance, restart)
    down_since = time.monotonic()
    try:
        _stow_to_bridge(stack.bridge_config, source)

        def retrying_egress() -> bool:
            record = Spool(stack.bridge_config.spool_dir).journal.load(key)
            return record.state is InstanceState.BUILT and record.attempts >= 2

        wait_until(retrying_egress, 60, "results built and egress retried while the PACS is down")
        health = _health(stack.bridge_config)
        backlog = health["backlog"]
        assert isinstance(backlog, dict) and backlog["retrying"] >= 1 and backlog["by_state"].get("built")
        metrics = httpx.get(f"http://127.0.0.1:{stack.bridge_config.http_port}/metrics", timeout=5).text
        assert 'medslip_bridge_backlog_instances{state="built"} 1.0' in metrics
        remaining = 25.0 - (time.monotonic() - down_since)
        if remaining > 0:  # keep the PACS down longer than the 20 s that used to dead-letter results
            wait_until(lambda: time.monotonic() - down_since >= 25.0, remaining + 5, "25 s of outage", 0.5)
        assert Spool(stack.bridge_config.spool_dir).journal.load(key).state is InstanceState.BUILT
    finally:
        restart_orthanc(stack.orthanc, stack.work)
    stack.orthanc.upload(source)
    wait_until(lambda: _all_done(stack.bridge_config.spool_dir, key), 60, "delivered after the outage")
    _wait_for_results(stack.orthanc, study_uid, count=1)
    record = Spool(stack.bridge_config.spool_dir).journal.load(key)
    assert [s["state"] for s in record.history if s["event"] == "entered"] == ["inferred", "built", "done"]
    assert not (stack.bridge_config.spool_dir / "dead-letter" / key).exists()


def _all_done(spool_dir: Path, key: str) -> bool:
    return Spool(spool_dir).journal.load(key).state is InstanceState.DONE


def test_dead_letter_replay_processes_the_instance_exactly_once(stack: Stack) -> None:
    source = _copy_with_new_uids((stack.data / "siim_chest_jpeg_baseline.dcm").read_bytes(), generate_uid())
    stack.sent.append(source)
    header = pydicom.dcmread(io.BytesIO(source), stop_before_pixels=True)
    config = BridgeConfig(
        spool_dir=stack.work / "replay-spool",
        service_url=stack.service_url,
        model_name=stack.bridge_config.model_name,
        pacs_port=free_port(),  # nobody listens: egress fails until the window (1 s) is over
        stable_seconds=0.2,
        extra_env={"MEDSLIP_BRIDGE_RETRY_WINDOW_SECONDS": "1"},
    )
    key = _key_of(config.spool_dir, source)
    log = stack.work / "bridge-replay-1.log"
    stack.logs.append(log)
    first = start_bridge(config, log)
    try:
        _stow_to_bridge(config, source)
        wait_until(lambda: _state(config.spool_dir, key) is InstanceState.DEAD_LETTER, 60, "dead-lettered")
    finally:
        first.stop()
    listed = _dead_letter_cli(config, "list", "--study", str(header.StudyInstanceUID))
    [entry] = [json.loads(line) for line in listed.splitlines()]
    assert entry["key"] == key and entry["category"] == "egress:association_failed"
    assert str(header.SOPInstanceUID) not in listed

    config.pacs_port = stack.orthanc.dicom_port
    log = stack.work / "bridge-replay-2.log"
    stack.logs.append(log)
    second = start_bridge(config, log)
    try:
        replayed = json.loads(_dead_letter_cli(config, "replay", "--instance", str(header.SOPInstanceUID)))
        assert replayed == {"action": "replay", "count": 1, "keys": [key]}
        wait_until(lambda: _state(config.spool_dir, key) is InstanceState.DONE, 60, "replayed instance done")
        again = json.loads(_dead_letter_cli(config, "replay", "--instance", str(header.SOPInstanceUID)))
        assert again["count"] == 0  # nothing left: a second replay cannot process it twice
    finally:
        second.stop()
    _wait_for_results(stack.orthanc, str(header.StudyInstanceUID), count=1)
    history = Spool(config.spool_dir).journal.load(key).history
    replayed_at = [s["event"] for s in history].index("replayed")
    after = [s for s in history[replayed_at + 1 :] if s["event"] == "entered"]
    assert [s["state"] for s in after] == ["built", "done"]  # saved answers reused: no second inference
    assert [s["state"] for s in history if s["event"] == "entered"].count("inferred") == 1


def _state(spool_dir: Path, key: str) -> InstanceState | None:
    journal = Spool(spool_dir).journal
    return journal.load(key).state if journal.exists(key) else None


def _dead_letter_cli(config: BridgeConfig, *args: str) -> str:
    env = {**config.env(), "PATH": os.environ.get("PATH", "")}
    binary = console_script("medslip-bridge")
    result = subprocess.run(
        [binary, "dead-letter", *args], capture_output=True, text=True, timeout=60, check=True, env=env
    )
    return result.stdout.strip()


def _encode(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_logs_of_the_whole_run_hold_no_patient_identifiers(stack: Stack) -> None:
    """Last in the module: checks the logs of every process over the whole run (plus one own study)."""
    own = _copy_with_new_uids((stack.data / "highdicom_dx_image.dcm").read_bytes(), generate_uid())
    stack.sent.append(own)
    body, content_type = build_multipart_related([own])
    url = f"http://127.0.0.1:{stack.bridge_config.http_port}/studies"
    assert (
        httpx.post(url, content=body, headers={"Content-Type": content_type}, timeout=30).status_code == 200
    )
    own_study = pydicom.dcmread(io.BytesIO(own), stop_before_pixels=True).StudyInstanceUID
    _wait_for_results(stack.orthanc, own_study, count=1)

    identifiers: set[str] = set()
    for data in stack.sent:
        identifiers |= _identifiers(data)
    text = "\n".join(path.read_text(errors="replace") for path in stack.logs if path.exists())
    assert "instance received" in text and "instance finished" in text  # the bridge did log the run
    leaked = sorted(value for value in identifiers if value in text)
    assert leaked == []
