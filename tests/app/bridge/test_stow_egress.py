"""STOW-RS egress: per-instance status from the PS3.18 response, transport errors as failures."""

from __future__ import annotations

import io

import pydicom
from pydicom.uid import UID, ComprehensiveSRStorage, ExplicitVRLittleEndian

from app.bridge.dicomweb import (
    FailedInstance,
    StoredInstance,
    content_type_params,
    parse_multipart_related,
    store_response,
)
from app.bridge.egress import StowEgress
from tests.support.bridge.loopback import CannedResponse, scripted_server


def _sr(uid: str) -> pydicom.Dataset:
    ds = pydicom.Dataset()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ComprehensiveSRStorage
    ds.file_meta.MediaStorageSOPInstanceUID = UID(uid)
    ds.SOPClassUID = ComprehensiveSRStorage
    ds.SOPInstanceUID = uid
    ds.StudyInstanceUID = "1.2.3"
    return ds


def test_partial_failure_is_reported_per_instance() -> None:
    _, body = store_response(
        [StoredInstance(ComprehensiveSRStorage, "1.1")], [FailedInstance("", "1.2", 0xA700)]
    )
    with scripted_server({"/dicom-web/studies": [CannedResponse(202, body)]}) as server:
        egress = StowEgress(f"{server.url}/dicom-web", username="u", password="p")
        status = egress.send([_sr("1.1"), _sr("1.2")])
        egress.close()
    assert status == {"1.1": None, "1.2": "stow_failure_0xa700"}
    [request] = server.requests
    assert request.path == "/dicom-web/studies/1.2.3"
    assert request.headers["Authorization"].startswith("Basic ")
    _, boundary, _ = content_type_params(request.headers["Content-Type"])
    assert boundary is not None
    parts = parse_multipart_related(request.body, boundary)
    assert [pydicom.dcmread(io.BytesIO(p)).SOPInstanceUID for _, p in parts] == ["1.1", "1.2"]


def test_server_error_and_unreachable_fail_every_instance() -> None:
    with scripted_server({"/studies": [CannedResponse(500, {})]}) as server:
        assert StowEgress(server.url).send([_sr("1.1")]) == {"1.1": "stow_http_500"}
    assert StowEgress("http://127.0.0.1:9", timeout_seconds=2).send([_sr("1.1")]) == {
        "1.1": "stow_ConnectError"
    }
