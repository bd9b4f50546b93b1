"""multipart/related round trip and PS3.18 store-response statuses."""

from __future__ import annotations

import pytest

from app.bridge.dicomweb import (
    FailedInstance,
    MultipartError,
    StoredInstance,
    build_multipart_related,
    content_type_params,
    failed_instances,
    parse_multipart_related,
    store_response,
)


def test_multipart_round_trip_keeps_binary_payloads() -> None:
    payloads = [b"\x00\r\n--not-a-boundary\r\n\xff", b"second"]
    body, content_type = build_multipart_related(payloads)
    media_type, boundary, part_type = content_type_params(content_type)
    assert (media_type, part_type) == ("multipart/related", "application/dicom")
    assert boundary is not None
    parts = parse_multipart_related(body, boundary)
    assert [payload for _, payload in parts] == payloads
    assert parts[0][0]["content-type"] == "application/dicom"


def test_missing_boundary_is_an_error() -> None:
    with pytest.raises(MultipartError):
        parse_multipart_related(b"nothing", "abc")


@pytest.mark.parametrize(
    ("stored", "failed", "status"),
    [(1, 0, 200), (1, 1, 202), (0, 1, 409), (0, 0, 200)],
)
def test_store_response_status(stored: int, failed: int, status: int) -> None:
    ok = [StoredInstance("1.2", f"1.2.{i}") for i in range(stored)]
    bad = [FailedInstance("1.2", f"1.3.{i}", 0x0122) for i in range(failed)]
    code, body = store_response(ok, bad)
    assert code == status
    assert failed_instances(body) == {f"1.3.{i}": 0x0122 for i in range(failed)}
