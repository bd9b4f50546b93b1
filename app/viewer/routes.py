"""Serve the viewer's static page at `/` and its assets under `/viewer/static`.

Why static files only: the page is a client of the public API (`/classify`, `/ground`, `/segment`,
`/v2/models/{name}`) like any other, with the same auth, limits and metrics; serving it adds no
inference surface and no server-side state (images are never stored). The assets ship inside the
package (pyproject package-data), need no build step and load nothing from outside this origin: the
Content-Security-Policy below makes the browser refuse any other origin, so the page works air-gapped
and cannot leak a film to a third party.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"
ASSETS_URL = "/viewer/static"

#: Only this origin; images from data:/blob: URLs (the API's base64 PNGs); no inline script or style.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def install_viewer(app: FastAPI) -> None:
    """Add `GET /` (the page, not in the OpenAPI document) and the asset mount to `app`."""
    app.mount(ASSETS_URL, StaticFiles(directory=STATIC_DIR), name="viewer-assets")

    @app.get("/", include_in_schema=False)
    async def viewer_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)
