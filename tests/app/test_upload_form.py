"""The in-memory multipart reader: the file part intact, the form rules, and no thread pool or disk."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.errors import MalformedMultipartError, MissingFileError
from app.upload_form import FilePart, read_file_part


def encode(**kwargs: Any) -> tuple[str, bytes]:
    """The Content-Type and body httpx sends for `files=` / `data=`."""
    request = httpx.Request("POST", "http://127.0.0.1/", **kwargs)
    return request.headers["content-type"], request.read()


def text_only(**fields: str) -> tuple[str, bytes]:
    """A multipart body of text fields only (httpx would send these url-encoded)."""
    parts = [f'--b0\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items()]
    return "multipart/form-data; boundary=b0", ("".join(parts) + "--b0--\r\n").encode()


async def chunked(body: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def read(content_type: str, body: bytes, size: int = 65536, **limits: int) -> FilePart:
    return await read_file_part(content_type, chunked(body, size), **limits)


async def test_large_file_part_comes_back_byte_for_byte_in_any_chunking() -> None:
    payload = bytes(range(256)) * (3 * 4096 + 7)  # 3 MiB and a bit: past Starlette's 1 MiB spool
    content_type, body = encode(files={"file": ("cxr.dcm", payload, "application/dicom")})
    for size in (1000, 65536, len(body)):
        part = await read(content_type, body, size=size)
        assert part.data == payload
        assert part.content_type == "application/dicom"
    small = b"\x89PNG" + b"\0" * 50
    content_type, body = encode(files={"file": ("a.png", small, "image/png")})
    assert (await read(content_type, body, size=1)).data == small


async def test_text_fields_beside_the_file_are_allowed_and_media_type_parameters_dropped() -> None:
    content_type, body = encode(
        data={"note": "routine", "priority": "stat"},
        files={"file": ("cxr.dcm", b"DICM-bytes", "application/dicom; transfer-syntax=1.2.840.10008.1.2")},
    )
    part = await read(content_type, body)
    assert part == FilePart(b"DICM-bytes", "application/dicom")


async def test_a_part_without_a_content_type_reads_as_empty_media_type() -> None:
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\n'
        f"abc\r\n--{boundary}--\r\n"
    ).encode()
    part = await read(f"multipart/form-data; boundary={boundary}", body)
    assert part == FilePart(b"abc", "")


async def test_the_reader_never_uses_the_thread_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """Starlette's parser writes spooled parts past 1 MiB through the thread pool; this one must not."""
    import anyio.to_thread

    async def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("read_file_part used the thread pool")

    monkeypatch.setattr(anyio.to_thread, "run_sync", refuse)
    payload = b"\x01" * (2 * 1024 * 1024)
    content_type, body = encode(files={"file": ("cxr.dcm", payload, "application/dicom")})
    assert (await read(content_type, body)).data == payload


@pytest.mark.parametrize(
    ("kwargs", "limits", "error"),
    [
        ({"files": {"other": ("a.txt", b"x", "text/plain")}}, {}, MissingFileError),
        ({"text": {"file": "not a file"}}, {}, MissingFileError),
        ({"text": {"a": "1"}}, {}, MissingFileError),
        (
            {
                "files": [
                    ("file", ("a.dcm", b"1", "application/dicom")),
                    ("file", ("b.dcm", b"2", "application/dicom")),
                ]
            },
            {},
            MalformedMultipartError,
        ),
        (
            {"data": {f"f{i}": "v" for i in range(4)}, "files": {"file": ("a", b"1")}},
            {"max_fields": 3},
            MalformedMultipartError,
        ),
        (
            {"data": {"note": "x" * 100}, "files": {"file": ("a", b"1")}},
            {"max_field_bytes": 99},
            MalformedMultipartError,
        ),
    ],
    ids=["no file field", "file sent as text", "only text", "two files", "too many fields", "field too long"],
)
async def test_form_rules(kwargs: dict[str, Any], limits: dict[str, int], error: type[Exception]) -> None:
    content_type, body = text_only(**kwargs["text"]) if "text" in kwargs else encode(**kwargs)
    with pytest.raises(error):
        await read(content_type, body, **limits)


async def test_malformed_bodies_are_refused_as_such() -> None:
    with pytest.raises(MalformedMultipartError, match="boundary"):
        await read("multipart/form-data", b"--x\r\n")
    with pytest.raises(MalformedMultipartError):
        await read("multipart/form-data; boundary=abc", b"this is not multipart at all\r\n" * 4)
    nameless = b"--abc\r\nContent-Disposition: form-data\r\n\r\nx\r\n--abc--\r\n"
    with pytest.raises(MalformedMultipartError, match="name"):
        await read("multipart/form-data; boundary=abc", nameless)


async def test_a_truncated_file_part_is_not_taken_for_a_whole_one() -> None:
    content_type, body = encode(files={"file": ("cxr.dcm", b"\x02" * 5000, "application/dicom")})
    with pytest.raises(MissingFileError):
        await read(content_type, body[: len(body) // 2])
