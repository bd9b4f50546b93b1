"""Decoding in the decode processes (MEDSLIP_DECODE_PROCESSES, the default): the same answers and
refusals as decoding in the worker threads, and a process that dies is replaced."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from fastapi import FastAPI

from app.contract.imaging import CorruptImageError, PreprocessingSpec
from app.contract.imaging.reduced import J2K_THREADS_ENV
from app.decode_pool import (
    NATIVE_TRANSFER_SYNTAXES,
    DecodeRequest,
    ModelInput,
    PoolDecoder,
    decode_for_model,
    decodes_without_gil,
    transfer_syntax,
)
from tests.support.images import dicom_bytes, dicom_dataset, png_bytes
from tests.support.service import running_app

_CRASH_FLAG = "MEDSLIP_TEST_CRASH_FLAG"


async def _answers(
    make_app: Callable[..., FastAPI], processes: int, inline: bool = False
) -> list[tuple[int, Any]]:
    hip = dicom_dataset(BodyPartExamined="HIP")
    lateral = dicom_dataset(ViewPosition="LL")
    uploads = [
        (dicom_bytes(), "application/dicom"),
        (png_bytes(90, 130), "image/png"),
        (dicom_bytes(hip), "application/dicom"),
        (dicom_bytes(lateral), "application/dicom"),
        (b"neither DICOM nor PNG nor JPEG", None),
    ]
    answers: list[tuple[int, Any]] = []
    async with running_app(make_app(decode_processes=processes, decode_inline=inline)) as client:
        for body, media in uploads:
            headers = {"Content-Type": media} if media else {}
            response: httpx.Response = await client.post("/ground", content=body, headers=headers)
            payload = response.json()
            if response.status_code == 200:
                findings = payload["findings"]
                answers.append((200, [(f["name"], f["score"], f["heatmap"]["width"]) for f in findings]))
            else:
                answers.append((response.status_code, (payload["code"], payload["detail"])))
    return answers


async def test_processes_answer_and_refuse_exactly_as_threads(make_app: Callable[..., FastAPI]) -> None:
    in_processes = await _answers(make_app, 1)
    assert [status for status, _ in in_processes] == [200, 200, 422, 422, 415]
    assert in_processes[2][1][0] == "not_chest" and in_processes[3][1][0] == "unsupported_view"
    assert in_processes == await _answers(make_app, 0)
    assert in_processes == await _answers(make_app, 1, inline=True)


@pytest.mark.parametrize(
    "syntax",
    ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.5"],
)
def test_transfer_syntax_is_read_from_the_meta_group(syntax: str) -> None:
    ds = dicom_dataset()
    del ds.PixelData  # the meta group alone decides the route; no encoder needed for the syntax
    ds.file_meta.TransferSyntaxUID = syntax
    data = dicom_bytes(ds)
    assert transfer_syntax(data) == syntax
    assert decodes_without_gil(data) is (syntax in NATIVE_TRANSFER_SYNTAXES)


def test_transfer_syntax_matches_pydicom_on_real_files(shared_data: Path) -> None:
    files = sorted((shared_data / "dicom").glob("*.dcm"))
    assert files
    routed = {}
    for path in files:
        data = path.read_bytes()
        assert transfer_syntax(data) == str(
            pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
        )
        routed[path.stem] = decodes_without_gil(data)
    assert any(routed.values()) and not all(routed.values())


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\0" * 132,
        b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\x00" + b"1.2",
        b"\0" * 128 + b"DICM" + b"\x08\x00" * 8,
    ],
    ids=["empty", "no-meta", "truncated-value", "not-group-2"],
)
def test_unreadable_meta_groups_have_no_transfer_syntax(data: bytes) -> None:
    assert transfer_syntax(data) is None
    assert not decodes_without_gil(data)


def test_png_and_jpeg_decode_inline_and_unknown_bytes_do_not() -> None:
    assert decodes_without_gil(png_bytes(90, 130))
    assert decodes_without_gil(b"\xff\xd8\xff\xe0" + b"\0" * 64)
    assert not decodes_without_gil(b"neither DICOM nor PNG nor JPEG")


def test_inline_uploads_never_reach_the_decode_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the process job crashing on every call, an upload routed inline still decodes, one routed
    to the pool is refused: routing decides where each upload runs."""
    flag = tmp_path / "crash"
    flag.write_text("always")
    monkeypatch.setenv(_CRASH_FLAG, str(flag))
    decoder = PoolDecoder(
        1,
        log_format="json",
        log_level="WARNING",
        job=crash_while_flagged,
        inline=lambda data: data.startswith(b"\x89PNG"),
    )
    request = _request()
    try:
        png = decoder.decode(
            DecodeRequest(
                png_bytes(90, 130),
                "image/png",
                max_pixels=request.max_pixels,
                allow_lateral=False,
                min_long_side=None,
                spec=request.spec,
            )
        )
        assert png.tensor.shape == (3, 64, 64)
        with pytest.raises(CorruptImageError, match="stopped the decoder twice"):
            decoder.decode(request)
    finally:
        decoder.shutdown()


def _request() -> DecodeRequest:
    return DecodeRequest(
        dicom_bytes(),
        "application/dicom",
        max_pixels=50_000_000,
        allow_lateral=False,
        min_long_side=128,
        spec=PreprocessingSpec.trained(64),
    )


def crash_while_flagged(request: DecodeRequest, _request_id: str | None) -> ModelInput:
    """A worker job that kills its process while the flag file exists (removing it unless told to
    keep it): a codec crashing on hostile input, as the pool sees it."""
    flag = Path(os.environ[_CRASH_FLAG])
    if flag.exists():
        if flag.read_text() != "always":
            flag.unlink()
        os._exit(70)
    return decode_for_model(request)


@pytest.mark.parametrize("always", [False, True], ids=["once", "always"])
def test_a_dead_decode_process_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, always: bool
) -> None:
    flag = tmp_path / "crash"
    flag.write_text("always" if always else "once")
    monkeypatch.setenv(_CRASH_FLAG, str(flag))
    decoder = PoolDecoder(1, log_format="json", log_level="WARNING", job=crash_while_flagged)
    try:
        if always:  # the image breaks the fresh pool too: refused, and the pool is usable again
            with pytest.raises(CorruptImageError, match="stopped the decoder twice"):
                decoder.decode(_request())
            flag.unlink()
        result = decoder.decode(_request())  # retried once on a fresh pool after the crash
        assert result.tensor.shape == (3, 64, 64)
        assert (result.box.src_h, result.box.src_w) == (64, 96)
    finally:
        decoder.shutdown()


_ENV_REPORT = "MEDSLIP_TEST_ENV_REPORT"


def report_j2k_threads(request: DecodeRequest, _request_id: str | None) -> ModelInput:
    """A worker job that writes the JPEG 2000 thread count its process decodes with to a file."""
    Path(os.environ[_ENV_REPORT]).write_text(os.environ.get(J2K_THREADS_ENV, "unset"))
    return decode_for_model(request)


def test_decode_processes_size_their_j2k_thread_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = tmp_path / "threads"
    monkeypatch.setenv(_ENV_REPORT, str(report))
    monkeypatch.delenv(J2K_THREADS_ENV, raising=False)  # nothing to inherit: the worker sets it
    decoder = PoolDecoder(1, log_format="json", log_level="WARNING", job=report_j2k_threads, j2k_threads=3)
    try:
        decoder.decode(_request())
    finally:
        decoder.shutdown()
    assert report.read_text() == "3"
    assert J2K_THREADS_ENV not in os.environ  # the server process is left as it was
