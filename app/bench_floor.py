"""`python -m app.bench_floor --port P`: the HTTP stack's own floor, beside the service in `medslip-bench
compare`.

Why: the serving target "HTTP overhead at concurrency 1 <= 10 % of the bare graph" only means something
next to what the same stack costs with none of the service in it. This app is that stack alone: FastAPI on
uvicorn's httptools protocol, no access log, one route that reads the whole upload and answers a JSON body
the size of a `/classify` answer; no middleware, no validation, no decoding, no model. Timed in the same
interleaved rounds as `/classify`, with the same client and film, its median is the part of the overhead
that no change to the service can remove.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Any

import uvicorn
from fastapi import FastAPI, Request

from app.bench_load import free_port, wait_until_up
from app.contract.locations import REPO_ROOT

#: The route the floor is timed on.
FLOOR_PATH = "/floor"
#: Entries of the answer: about the JSON a `/classify` of the bundle's reported findings returns.
ANSWER_ENTRIES = 15


def create_app() -> FastAPI:
    """The floor app: `POST /floor` reads the body and answers; `GET /health` says it is up."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(FLOOR_PATH)
    async def floor(request: Request) -> dict[str, Any]:
        body = await request.body()
        findings = [{"name": f"finding_{i}", "probability": 0.5, "threshold": 0.5, "positive": False,
                     "calibrated": True} for i in range(ANSWER_ENTRIES)]
        return {"findings": findings, "received_bytes": len(body)}

    return app


def spawn_floor(ready_timeout_s: float = 60.0) -> tuple[subprocess.Popen[bytes], str]:
    """Start the floor app on a free loopback port and wait (bounded) until `/health` answers."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "app.bench_floor", "--port", str(port)], cwd=REPO_ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(process, f"{url}/health", ready_timeout_s, "the HTTP floor app")
    return process, url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(create_app(), host="127.0.0.1", port=args.port, http="httptools", access_log=False,
                log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
