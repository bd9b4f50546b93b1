"""No patient data (names, IDs, dates, UIDs) reaches the logs, even when requests fail."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from fastapi import FastAPI

from app.contract.logformat import JsonFormatter
from tests.support.images import PHI, dicom_bytes, dicom_dataset
from tests.support.service import running_app


async def test_logs_hold_no_phi(make_app: Callable[..., FastAPI], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    good = dicom_dataset()
    lateral = dicom_dataset(ViewPosition="LL")
    hip = dicom_dataset(BodyPartExamined="HIP")
    truncated = dicom_bytes(dicom_dataset())[:-500]
    identifiers = [*PHI.values()]
    for ds in (good, lateral, hip):
        identifiers += [ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID]
    async with running_app(make_app()) as client:
        statuses = []
        for body in (dicom_bytes(good), dicom_bytes(lateral), dicom_bytes(hip), truncated):
            response = await client.post(
                "/ground", content=body, headers={"Content-Type": "application/dicom"}
            )
            statuses.append(response.status_code)
            for value in identifiers:
                assert value not in response.text
    assert statuses == [200, 422, 422, 422]
    formatter = JsonFormatter()
    rendered = "\n".join(formatter.format(r) for r in caplog.records)
    assert '"endpoint": "/ground"' in rendered  # the access lines were captured
    for value in identifiers:
        assert value not in rendered and value not in caplog.text
