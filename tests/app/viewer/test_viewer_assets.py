"""The viewer's static assets: served by the service with a same-origin-only policy, free of external
URLs, calling only documented API routes, shipped in the wheel, and switched off by a setting."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
from fastapi import FastAPI

from app.viewer import STATIC_DIR
from tests.support.service import running_app

REPO = Path(__file__).resolve().parents[3]
ASSETS = sorted(p for p in STATIC_DIR.rglob("*") if p.is_file())
#: Any absolute or protocol-relative URL: the page must load nothing from elsewhere.
EXTERNAL_URL = re.compile(r"(?i)\b(?:https?|wss?|ftp):|(?:src|href|action)\s*=\s*[\"']//|url\(\s*[\"']?//")


def test_assets_hold_no_external_url() -> None:
    assert {p.suffix for p in ASSETS} == {".html", ".css", ".js"}
    for path in ASSETS:
        found = EXTERNAL_URL.findall(path.read_text(encoding="utf-8"))
        assert not found, f"{path.relative_to(STATIC_DIR)} names external URLs: {found}"


def test_page_calls_only_documented_routes(make_app: Callable[..., FastAPI]) -> None:
    """Every path the scripts request is a route of the OpenAPI document: no private surface."""
    called: set[str] = set()
    for path in STATIC_DIR.glob("js/*.js"):
        text = path.read_text(encoding="utf-8")
        called |= set(re.findall(r'postImage\(\s*"([\w/]+)"', text))
        fetched = re.findall(r'getJson\(\s*[`"]([^`"]+)[`"]', text)
        called |= {re.sub(r"\$\{[^}]+\}", "{name}", path) for path in fetched}
    assert called == {"classify", "ground", "segment", "health/ready", "v2/models/{name}"}
    documented = set(make_app().openapi()["paths"])
    assert {f"/{path}" for path in called} <= documented


async def test_page_and_assets_are_served_with_a_same_origin_policy(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy and "script-src 'self'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "not a medical device" in page.text
    referenced = re.findall(r'(?:src|href)="(viewer/static/[^"]+)"', page.text)
    assert referenced, "the page references its assets relatively"
    for relative in referenced:
        asset = await client.get(f"/{relative}")
        assert asset.status_code == 200, relative
    for path in STATIC_DIR.glob("js/*.js"):
        asset = await client.get(f"/viewer/static/js/{path.name}")
        assert asset.status_code == 200 and "javascript" in asset.headers["content-type"]
    assert "/" not in (await client.get("/openapi.json")).json()["paths"]


async def test_viewer_switched_off(make_app: Callable[..., FastAPI]) -> None:
    async with running_app(make_app(viewer=False)) as client:
        assert (await client.get("/")).status_code == 404
        assert (await client.get("/viewer/static/js/main.js")).status_code == 404
        assert (await client.get("/health/live")).status_code == 200


def test_wheel_ships_every_asset(tmp_path: Path) -> None:
    """`make serve` and the container install the package, not the tree: the assets must be in it."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("app", "training"):
        shutil.copytree(REPO / package, source / package, ignore=ignore)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
               "-q", "-w", str(tmp_path / "dist"), str(source)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("medslip-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"app/viewer/static/{p.relative_to(STATIC_DIR).as_posix()}" for p in ASSETS}
    assert expected <= shipped, sorted(expected - shipped)
