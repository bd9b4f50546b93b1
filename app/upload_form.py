"""The image part of a multipart/form-data upload, collected in memory as the body streams in.

Why not Starlette's form parser: it spools every file part into a `SpooledTemporaryFile` that rolls
over to a disk file past 1 MiB, and from then on writes, seeks and reads each chunk through the thread
pool. Chest films are 1-30 MiB, so nearly every upload paid for a temporary file and a thread hop per
64 KiB chunk, only for the route to read the whole part back into memory for decoding (measured in
docs/benchmarks.md, "Multipart uploads and heat-map encoding"). The body is already bounded while it streams
(`app.body_guard`: size limit, shared byte budget, time limit), so holding the part in memory adds no
risk.

The form rules are the route's: exactly one file part, in field `file`; at most `max_fields` other
(text) fields of at most `max_field_bytes` each; anything else is a malformed upload.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.multipart import FormParserError, MultipartParser, parse_options_header

from app.errors import MalformedMultipartError, MissingFileError

#: The form field that carries the image.
FILE_FIELD = "file"


@dataclass(frozen=True)
class FilePart:
    """The uploaded file's bytes and the media type its part declared ("" when none)."""

    data: bytes
    content_type: str


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str = ""
    is_file: bool = False
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0


class _FormCollector:
    """python-multipart callbacks that keep the one file part and count the rest."""

    def __init__(self, *, max_fields: int, max_field_bytes: int) -> None:
        self.max_fields = max_fields
        self.max_field_bytes = max_field_bytes
        self.file: FilePart | None = None
        self.files = 0
        self.fields = 0
        self._part = _Part()
        self._header_name = b""
        self._header_value = b""

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._begin,
            "on_part_data": self._data,
            "on_part_end": self._end,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_part,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
        }

    def _begin(self) -> None:
        self._part = _Part()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_part(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._part.headers[self._header_name.lower()] = self._header_value
        self._header_name, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._part.headers.get(b"content-disposition", b""))
        if b"name" not in options:
            raise MalformedMultipartError("a multipart part has no Content-Disposition name")
        self._part.name = options[b"name"].decode("utf-8", "replace")
        self._part.is_file = b"filename" in options
        if self._part.is_file:
            self.files += 1
            if self.files > 1:
                raise MalformedMultipartError("send one file per request")
        else:
            self.fields += 1
            if self.fields > self.max_fields:
                raise MalformedMultipartError(f"more than {self.max_fields} form fields")

    def _data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        part.size += end - start
        if not part.is_file and part.size > self.max_field_bytes:
            raise MalformedMultipartError(f"a form field is longer than {self.max_field_bytes} bytes")
        part.chunks.append(data[start:end])

    def _end(self) -> None:
        part = self._part
        if part.is_file and part.name == FILE_FIELD:
            media_type = part.headers.get(b"content-type", b"").decode("latin-1")
            self.file = FilePart(b"".join(part.chunks), media_type.split(";")[0].strip().lower())
        part.chunks = []


async def read_file_part(
    content_type: str,
    body: AsyncIterator[bytes],
    *,
    max_fields: int = 8,
    max_field_bytes: int = 64 * 1024,
) -> FilePart:
    """The `file` part of the multipart body `body` (declared by the header `content_type`).

    Raises `MalformedMultipartError` for a body that is not valid multipart or breaks the form
    rules, `MissingFileError` when no complete file part named `file` arrived."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise MalformedMultipartError("multipart/form-data without a boundary")
    collector = _FormCollector(max_fields=max_fields, max_field_bytes=max_field_bytes)
    parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in body:
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise MalformedMultipartError("the multipart body could not be parsed") from exc
    if collector.file is None:
        raise MissingFileError(f"multipart body has no `{FILE_FIELD}` file part")
    return collector.file
