"""Screenshots of the built-in viewer for the README (docs/examples/viewer_*.png).

Serves a bundle on loopback, opens the viewer in headless Chromium (the same helpers as the viewer's
tests), loads a real film, switches on the lung, heart and clavicle masks and saves a screenshot, then
switches them off, selects a finding (heatmap, peak, box and regions) and saves another. Everything
shown comes from the service's answers for that film.

    python -m scripts.viewer_screenshots --film ../shared/data/nih-cxr14/images/00007629_001.jpg \
        --finding pneumonia --out docs/examples
"""

from __future__ import annotations

import argparse
import io
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image
from selenium.webdriver.support.ui import WebDriverWait

from app.contract.bundle import resolve_default_bundle
from app.contract.locations import MODEL_STORE
from app.logging_setup import configure_logging
from tests.support.browser import browser_missing, headless_chromium
from tests.support.live_server import live_server

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BUNDLE = resolve_default_bundle(MODEL_STORE)  # the shipped default model
TIMEOUT_S = 120.0


def _wait(driver: Any, condition: Callable[[Any], Any]) -> None:
    WebDriverWait(driver, TIMEOUT_S, poll_frequency=0.05).until(condition)


def _attribute(driver: Any, element_id: str, name: str) -> str | None:
    value = driver.find_element("id", element_id).get_attribute(name)
    return None if value is None else str(value)


def _save(driver: Any, path: Path) -> None:
    """The viewport from the top of the page, as an optimised RGB PNG."""
    driver.execute_script("window.scrollTo(0, 0)")
    image = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    image.save(path, format="PNG", optimize=True)
    logger.info("screenshot saved", extra={"path": str(path), "bytes": path.stat().st_size})


def take(film: Path, finding: str, out: Path, bundle: Path, size: tuple[int, int]) -> list[Path]:
    """Load `film`, show the masks, then `finding`; returns the two screenshot paths."""
    out.mkdir(parents=True, exist_ok=True)
    shots = [out / "viewer_finding.png", out / "viewer_masks.png"]
    server = live_server(bundle, ready_timeout_s=180.0, max_batch_size=1, latency_budget_ms=600_000.0)
    with server as url, headless_chromium(*size) as driver:
        driver.get(f"{url}/")
        _wait(driver, lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "true")
        driver.find_element("id", "file-input").send_keys(str(film.resolve()))
        _wait(driver, lambda d: d.find_element("id", "findings-table").is_displayed())
        toggles = [
            driver.find_element("css selector", f"input[name=mask][value={group}]")
            for group in ("lungs", "heart", "clavicles")
        ]
        for toggle in toggles:
            toggle.click()
        _wait(driver, lambda d: _attribute(d, "mask-canvas", "data-groups") == "lungs,heart,clavicles")
        _save(driver, shots[1])
        for toggle in toggles:
            toggle.click()
        _wait(driver, lambda d: _attribute(d, "mask-canvas", "data-groups") == "")
        driver.find_element("css selector", f'button.finding[data-name="{finding}"]').click()
        _wait(driver, lambda d: _attribute(d, "heatmap-canvas", "data-finding") == finding)
        _save(driver, shots[0])
    return shots


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--film", type=Path, required=True, help="a frontal chest film (DICOM, PNG, JPEG)")
    parser.add_argument("--finding", default="pneumonia", help="the finding whose heatmap is shown")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "examples")
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("--width", type=int, default=1680)
    parser.add_argument("--height", type=int, default=1150)
    args = parser.parse_args(argv)
    configure_logging("text", "INFO")
    missing = browser_missing()
    if missing is not None:
        raise SystemExit(f"no headless browser: {missing}")
    take(args.film, args.finding, args.out, args.bundle, (args.width, args.height))


if __name__ == "__main__":
    main()
