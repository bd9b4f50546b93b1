"""C-STORE SCP ingress and C-STORE SCU egress over real loopback associations (pynetdicom)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.uid import ComprehensiveSRStorage, ExplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.transport import ThreadedAssociationServer

from app.bridge.egress import CStoreEgress, Egress
from app.bridge.journal import InstanceState
from app.bridge.metrics import BridgeMetrics
from app.bridge.scp import StoreSCP
from app.bridge.spool import Spool
from tests.support.bridge.fakes import make_chest_dicom

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


@pytest.fixture
def scp(tmp_path: Path) -> Iterator[StoreSCP]:
    spool = Spool(tmp_path / "spool")
    server = StoreSCP(spool, BridgeMetrics(spool.depth), "MEDSLIP", "127.0.0.1", 0)
    server.start()
    yield server
    server.stop()


def _send(port: int, datasets: list[pydicom.Dataset]) -> list[int]:
    ae = AE(ae_title="MODALITY")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    for ds in datasets:
        ae.add_requested_context(ds.SOPClassUID, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="MEDSLIP")
    assert assoc.is_established
    try:
        return [int(assoc.send_c_store(ds).Status) for ds in datasets]
    finally:
        assoc.release()


def test_cstore_is_spooled_before_success(scp: StoreSCP) -> None:
    ds = pydicom.dcmread(io.BytesIO(make_chest_dicom(view="AP")))
    assert _send(scp.port, [ds]) == [0x0000]
    [record] = scp.spool.journal.load_all()
    assert (
        record.state is InstanceState.RECEIVED and record.ingress == "cstore" and record.view_position == "AP"
    )
    stored = pydicom.dcmread(scp.spool.instance_path(record.key))
    assert stored.SOPInstanceUID == ds.SOPInstanceUID
    assert stored.pixel_array.shape == (64, 64)


def test_unsupported_sop_class_is_not_negotiated(scp: StoreSCP) -> None:
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(MR_IMAGE_STORAGE, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", scp.port, ae_title="MEDSLIP")
    try:
        assert not assoc.is_established or not assoc.accepted_contexts
    finally:
        if assoc.is_established:
            assoc.release()


def test_association_to_another_called_ae_title_is_rejected(scp: StoreSCP) -> None:
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", scp.port, ae_title="SOMEONE_ELSE")
    assert assoc.is_rejected


def test_cecho_answers(scp: StoreSCP) -> None:
    ae = AE(ae_title="ADMIN")
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", scp.port, ae_title="MEDSLIP")
    assert assoc.is_established
    assert int(assoc.send_c_echo().Status) == 0
    assoc.release()


class RecordingPacs:
    """An SCP standing in for the PACS: stores what it gets, can answer a failure status."""

    def __init__(self, status: int = 0x0000) -> None:
        self.received: list[str] = []
        self.status = status
        ae = AE(ae_title="PACS")
        ae.add_supported_context(ComprehensiveSRStorage, ExplicitVRLittleEndian)
        self.associations = 0
        server = ae.start_server(
            ("127.0.0.1", 0),
            block=False,
            evt_handlers=[(evt.EVT_C_STORE, self._on_store), (evt.EVT_ESTABLISHED, self._on_association)],
        )
        assert server is not None
        self.server: ThreadedAssociationServer = server
        self.port = int(server.server_address[1])

    def _on_association(self, event: Any) -> None:
        self.associations += 1

    def _on_store(self, event: Any) -> int:
        self.received.append(str(event.dataset.SOPInstanceUID))
        return self.status


def _sr(uid: str) -> pydicom.Dataset:
    ds = pydicom.Dataset()
    ds.SOPClassUID = ComprehensiveSRStorage
    ds.SOPInstanceUID = uid
    ds.StudyInstanceUID = "1.2.3"
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def test_cstore_egress_sends_a_batch_in_one_association_and_checks_each_status() -> None:
    pacs = RecordingPacs()
    try:
        status = Egress([CStoreEgress("127.0.0.1", pacs.port, "PACS", "MEDSLIP")]).send(
            [_sr("1.1"), _sr("1.2")]
        )
        assert status == {"1.1": None, "1.2": None}
        assert pacs.received == ["1.1", "1.2"] and pacs.associations == 1
    finally:
        pacs.server.shutdown()


def test_cstore_egress_reports_failure_status_and_unreachable_pacs() -> None:
    pacs = RecordingPacs(status=0xA700)
    try:
        status = CStoreEgress("127.0.0.1", pacs.port, "PACS", "MEDSLIP").send([_sr("1.1")])
        assert status == {"1.1": "cstore_status_42752"}
    finally:
        pacs.server.shutdown()
    no_meta = _sr("1.3")
    del no_meta.file_meta
    pacs = RecordingPacs()
    try:
        assert CStoreEgress("127.0.0.1", pacs.port, "PACS", "MEDSLIP").send([no_meta]) == {
            "1.3": "cstore_AttributeError"
        }
    finally:
        pacs.server.shutdown()
    unreachable = CStoreEgress("127.0.0.1", 9, "PACS", "MEDSLIP", timeout_seconds=2).send([_sr("1.1")])
    assert unreachable == {"1.1": "association_failed"}
