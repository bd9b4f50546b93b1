"""A scripted HTTP server on 127.0.0.1 for retry tests: real sockets, canned answers, recorded requests."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class CannedResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ScriptedServer:
    """Answers each request with the next canned response for its path prefix (the last one repeats)."""

    script: dict[str, list[CannedResponse]]
    requests: list[RecordedRequest] = field(default_factory=list)
    url: str = ""

    def answer(self, request: RecordedRequest) -> CannedResponse:
        self.requests.append(request)
        for prefix, responses in self.script.items():
            if request.path.startswith(prefix):
                return responses.pop(0) if len(responses) > 1 else responses[0]
        return CannedResponse(404, {"code": "not_found"})


@contextmanager
def scripted_server(script: dict[str, list[CannedResponse]]) -> Iterator[ScriptedServer]:
    state = ScriptedServer(script)

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = RecordedRequest(self.command, self.path, dict(self.headers), self.rfile.read(length))
            canned = state.answer(request)
            payload = json.dumps(canned.body).encode()
            self.send_response(canned.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in canned.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _handle  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            """Silence the default stderr access log."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
