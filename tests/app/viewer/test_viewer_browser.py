"""The built-in viewer in a real headless Chromium against the real service and default bundle.

One browser and one service for the module (start-up dominates). Every drawn result is checked
against what the public API answers for the same film, so the page cannot show something else.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pydicom
import pytest
from PIL import Image

from app.contract.bundle import resolve_default_bundle
from app.contract.locations import MODEL_STORE
from tests.support.browser import browser_missing, headless_chromium, request_urls
from tests.support.live_server import live_server

BUNDLE = resolve_default_bundle(MODEL_STORE)  # the shipped default model
FRONTAL = "dicom/wg04_RG1_J2KI.dcm"  # CR PA chest, MONOCHROME1, JPEG 2000, 1841 x 1955
LATERAL_SOURCE = "dicom/siim_chest_jpeg_baseline.dcm"
FREE_TEXT = "left lower lobe consolidation"
TIMEOUT_S = 90.0
#: How Chromium logs a 4xx answer (the refusals the tests provoke: 401, 422), not a page error.
REFUSAL_LOG = "Failed to load resource: the server responded with a status of 4"

_missing = browser_missing()
pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(_missing is not None, reason=f"no headless browser: {_missing}"),
]


# --- fixtures ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def films(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real frontal DICOM, and a lateral one: a real film whose header says ViewPosition LL."""
    lateral = pydicom.dcmread(shared_data / LATERAL_SOURCE)
    lateral.ViewPosition = "LL"
    path = tmp_path_factory.mktemp("films") / "lateral.dcm"
    lateral.save_as(path)
    return {"frontal": shared_data / FRONTAL, "lateral": path}


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    if not (BUNDLE / "metadata.json").is_file():
        pytest.skip(f"the default bundle is absent: {BUNDLE}")
    # One batch bucket (a quick start); no latency-budget refusals: admission control is not under test
    # here, and a warm-up slowed by a busy host would otherwise seed an estimate that refuses every film.
    settings = {"max_batch_size": 1, "latency_budget_ms": 600_000.0}
    with live_server(BUNDLE, ready_timeout_s=180.0, **settings) as url:
        yield url


@pytest.fixture(scope="module")
def driver(service: str) -> Iterator[Any]:
    with headless_chromium(1366, 768) as browser:
        browser.get(f"{service}/")
        wait(browser, lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "true")
        yield browser


@pytest.fixture
def frontal(driver: Any, films: dict[str, Path]) -> Any:
    """The page showing the frontal film's results (uploaded again only when another state shows)."""
    shown = driver.find_element("tag name", "body").get_attribute("data-film") == "frontal"
    if not (shown and displayed(driver, "findings-table") and not displayed(driver, "error")):
        upload(driver, films["frontal"])
        wait(driver, lambda d: displayed(d, "findings-table") or displayed(d, "error"))
        assert not displayed(driver, "error"), by_id(driver, "error").text
        driver.execute_script("document.body.dataset.film = 'frontal'")
    return driver


# --- helpers ----------------------------------------------------------------------------------------
def wait(driver: Any, condition: Callable[[Any], Any], timeout_s: float = TIMEOUT_S) -> Any:
    """Poll a real page condition (bounded): Selenium's WebDriverWait."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s, poll_frequency=0.05).until(condition)


def by_id(driver: Any, element_id: str) -> Any:
    return driver.find_element("id", element_id)


def displayed(driver: Any, element_id: str) -> bool:
    return bool(by_id(driver, element_id).is_displayed())


def click(driver: Any, element: Any) -> None:
    """Scroll to the middle of the viewport (clear of the sticky banner), then a real click."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def upload(driver: Any, film: Path) -> None:
    driver.execute_script("document.body.dataset.film = ''")
    by_id(driver, "file-input").send_keys(str(film))


def finding_button(driver: Any, name: str) -> Any:
    return driver.find_element("css selector", f'button.finding[data-name="{name}"]')


def canvas_rgba(driver: Any, element_id: str) -> np.ndarray:
    """The canvas's own pixels (H, W, 4), not a screenshot: what the page drew."""
    url = driver.execute_script(f"return document.getElementById('{element_id}').toDataURL('image/png')")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGBA"))


def api(service: str, route: str, film: Path, params: list[tuple[str, str]]) -> dict[str, Any]:
    """What the public API answers for the same film: the reference for every drawn result."""
    files = {"file": (film.name, film.read_bytes(), "application/octet-stream")}
    response = httpx.post(f"{service}/{route}", params=params, files=files, timeout=TIMEOUT_S)
    body: dict[str, Any] = response.json()
    return body


def png(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("L"))


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float((a == b).mean())


# --- tests ------------------------------------------------------------------------------------------
def test_page_loads_from_the_service(driver: Any) -> None:
    assert "research use only" in driver.title
    disclaimer = by_id(driver, "disclaimer")
    assert disclaimer.is_displayed() and "not a medical device" in disclaimer.text
    assert by_id(driver, "service-status").text == "Service ready."


def test_dicom_upload_fills_the_findings_table(frontal: Any, service: str, films: dict[str, Path]) -> None:
    expected = api(service, "classify", films["frontal"], [("input_image", "true")])
    rows = frontal.find_elements("css selector", "#findings-body tr")
    assert [row.get_attribute("data-name") for row in rows] == [f["name"] for f in expected["findings"]]
    for row, finding in zip(rows, expected["findings"], strict=True):
        score, threshold, calibrated, positive = (c.text for c in row.find_elements("tag name", "td"))
        assert score == f"{finding['score']:.3f}" and threshold == f"{finding['threshold']:.3f}"
        assert calibrated.startswith("yes" if finding["calibrated"] else "no")
        assert ("uncalibrated" in calibrated) is (not finding["calibrated"])
        assert positive == ("yes" if finding["positive"] else "no")
    # the film is drawn as the model saw it (MONOCHROME1 inverted, VOI applied), at its original size
    film = canvas_rgba(frontal, "film-canvas")
    assert film.shape[:2] == (expected["input"]["rows"], expected["input"]["columns"])
    seen = png(expected["input"]["image"]["png_base64"]).astype(np.float64)
    drawn = np.asarray(Image.fromarray(film[..., 0]).resize(seen.shape[::-1]), dtype=np.float64)
    assert drawn.std() > 20 and np.corrcoef(drawn.ravel(), seen.ravel())[0, 1] > 0.98
    assert "original size" in by_id(frontal, "input-info").text.lower()


def test_selected_finding_overlays_its_heatmap(frontal: Any, service: str, films: dict[str, Path]) -> None:
    name = "pneumonia"
    click(frontal, finding_button(frontal, name))
    wait(frontal, lambda d: by_id(d, "heatmap-canvas").get_attribute("data-finding") == name)
    (expected,) = api(service, "ground", films["frontal"], [("findings", name)])["findings"]
    heat = png(expected["heatmap"]["png_base64"])  # (rows, columns), 0 where the finding is absent
    alpha = canvas_rgba(frontal, "heatmap-canvas")[..., 3]
    assert heat.std() > 10  # a real map with strong and weak parts: the comparisons below can fail
    assert agreement(alpha > 0, heat > 0) > 0.999  # drawn where the API's heatmap is, nowhere else
    assert np.abs(alpha.astype(np.int16) - heat).mean() < 1.0  # as strong as the API says
    peak = expected["peak"]
    assert alpha[peak["y"], peak["x"]] >= 250
    marks = canvas_rgba(frontal, "marks-canvas")[..., 3]
    assert marks[peak["y"] - 20 : peak["y"] + 21, peak["x"] - 20 : peak["x"] + 21].any()  # the cross
    summary = by_id(frontal, "detail-summary").text
    assert f"x {peak['x']}, y {peak['y']}" in summary
    regions = [li.text for li in frontal.find_elements("css selector", "#regions li")]
    assert regions == [f"{r['name'].replace('_', ' ')} ({r['score']:.3f})" for r in expected["anatomy"]]
    assert finding_button(frontal, name).get_attribute("aria-pressed") == "true"


def test_findings_are_selectable_with_the_keyboard(frontal: Any) -> None:
    from selenium.webdriver.common.keys import Keys

    buttons = frontal.find_elements("css selector", "button.finding")
    first, second = (b.get_attribute("data-name") for b in buttons[:2])
    frontal.execute_script("arguments[0].focus()", buttons[0])
    frontal.switch_to.active_element.send_keys(Keys.ARROW_DOWN)
    assert frontal.switch_to.active_element.get_attribute("data-name") == second
    frontal.switch_to.active_element.send_keys(Keys.ENTER)
    wait(frontal, lambda d: by_id(d, "heatmap-canvas").get_attribute("data-finding") == second)
    assert finding_button(frontal, second).get_attribute("aria-pressed") == "true"
    assert finding_button(frontal, first).get_attribute("aria-pressed") == "false"


def test_opacity_slider_fades_the_heatmap(frontal: Any) -> None:
    from selenium.webdriver.common.keys import Keys

    slider = by_id(frontal, "opacity")
    slider.send_keys(Keys.HOME)
    assert by_id(frontal, "heatmap-canvas").value_of_css_property("opacity") == "0"
    assert by_id(frontal, "opacity-value").text == "0 %"
    slider.send_keys(Keys.END)
    assert by_id(frontal, "heatmap-canvas").value_of_css_property("opacity") == "1"


def test_lung_mask_toggle(frontal: Any, service: str, films: dict[str, Path]) -> None:
    toggle = frontal.find_element("css selector", "input[name=mask][value=lungs]")
    click(frontal, toggle)
    wait(frontal, lambda d: by_id(d, "mask-canvas").get_attribute("data-groups") == "lungs")
    params = [("anatomy", "right_lung"), ("anatomy", "left_lung")]
    masks = {m["name"]: m for m in api(service, "segment", films["frontal"], params)["masks"]}
    lungs = (png(masks["right_lung"]["png_base64"]) > 0) | (png(masks["left_lung"]["png_base64"]) > 0)
    assert 0.05 < lungs.mean() < 0.9
    alpha = canvas_rgba(frontal, "mask-canvas")[..., 3]
    assert agreement(alpha > 0, lungs) > 0.999
    legend = by_id(frontal, "mask-legend").text
    assert f"left lung {masks['left_lung']['area_fraction'] * 100:.1f} %" in legend
    click(frontal, toggle)
    wait(frontal, lambda d: by_id(d, "mask-canvas").get_attribute("data-groups") == "")
    assert not canvas_rgba(frontal, "mask-canvas")[..., 3].any()


def test_free_text_finding_is_scored_and_grounded(frontal: Any, service: str, films: dict[str, Path]) -> None:
    box = by_id(frontal, "free-text")
    box.clear()
    box.send_keys(FREE_TEXT)
    click(frontal, by_id(frontal, "free-text-submit"))
    wait(frontal, lambda d: by_id(d, "heatmap-canvas").get_attribute("data-finding") == FREE_TEXT)
    (expected,) = api(service, "ground", films["frontal"], [("findings", FREE_TEXT)])["findings"]
    assert expected["custom"] is True
    row = frontal.find_element("css selector", f'#findings-body tr[data-name="{FREE_TEXT}"]')
    assert "free text" in row.text
    assert row.find_element("css selector", "td.score").text == f"{expected['score']:.3f}"
    alpha = canvas_rgba(frontal, "heatmap-canvas")[..., 3]
    assert agreement(alpha > 0, png(expected["heatmap"]["png_base64"]) > 0) > 0.999


@pytest.mark.parametrize("size", [(1366, 768), (1920, 1080)], ids=["laptop", "1080p"])
def test_layout_fits_laptop_and_1080p(frontal: Any, size: tuple[int, int]) -> None:
    frontal.set_window_size(*size)
    try:
        metrics = frontal.execute_script(
            """
            const box = (id) => document.getElementById(id).getBoundingClientRect();
            window.scrollTo(0, document.body.scrollHeight);
            const disclaimer = box('disclaimer');
            return {overflow: document.documentElement.scrollWidth - window.innerWidth,
                    disclaimerTop: disclaimer.top, disclaimerBottom: disclaimer.bottom,
                    height: window.innerHeight, stageRight: box('stage').right,
                    tableLeft: box('findings-table').left, stageWidth: box('stage').width,
                    stageHeight: box('stage').height};
            """
        )
    finally:
        frontal.set_window_size(1366, 768)
        frontal.execute_script("window.scrollTo(0, 0)")
    assert metrics["overflow"] <= 0  # no sideways scrolling
    assert metrics["disclaimerTop"] >= 0 and metrics["disclaimerBottom"] <= metrics["height"]  # sticky
    assert metrics["stageRight"] <= metrics["tableLeft"] and metrics["stageWidth"] > 300  # side by side
    assert metrics["stageHeight"] <= metrics["height"]  # the whole film fits on the screen


def test_api_key_field(driver: Any, service: str, films: dict[str, Path], tiny_bundle: Path) -> None:
    """A service with keys refuses the film until the key typed in the page is sent with it."""
    from selenium.webdriver.common.keys import Keys

    key = "viewer-test-key"
    try:
        with live_server(tiny_bundle, api_keys=[key]) as keyed:
            driver.get(f"{keyed}/")
            wait(driver, lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "true")
            upload(driver, films["frontal"])
            wait(driver, lambda d: by_id(d, "error").get_attribute("data-code") == "unauthorized")
            assert "API key" in by_id(driver, "error-explain").text
            field = by_id(driver, "api-key")
            field.send_keys(key)
            field.send_keys(Keys.ENTER)
            wait(driver, lambda d: displayed(d, "findings-table"))
            assert not displayed(driver, "error")
            newest = driver.find_element("css selector", "#request-log li")
            assert newest.text.startswith("/classify: tiny-cxr") and "request id" in newest.text
    finally:
        driver.get(f"{service}/")
        wait(driver, lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "true")


def test_lateral_view_refusal_is_explained(driver: Any, service: str, films: dict[str, Path]) -> None:
    expected = api(service, "classify", films["lateral"], [("input_image", "true")])
    assert expected["code"] == "unsupported_view"
    upload(driver, films["lateral"])
    wait(driver, lambda d: by_id(d, "error").get_attribute("data-code") == "unsupported_view")
    assert by_id(driver, "error-title").text == expected["title"]
    assert by_id(driver, "error-detail").text == expected["detail"]
    explanation = by_id(driver, "error-explain").text
    assert "lateral" in explanation and "frontal" in explanation
    assert "code unsupported_view" in by_id(driver, "error-meta").text
    assert not displayed(driver, "findings-table") and not displayed(driver, "stage")
    assert by_id(driver, "service-status").text == "The film was not analysed."


def test_no_request_left_loopback(frontal: Any, service: str) -> None:
    """Everything the browser asked for since it started came from loopback services (or data: URLs)."""
    driver = frontal
    urls = request_urls(driver)
    outside = [u for u in urls if u not in ("data:", "blob:") and urlsplit(u).hostname != "127.0.0.1"]
    assert not outside
    paths = {u.removeprefix(service).split("?")[0] for u in urls if u.startswith(service)}
    assert {"/", "/viewer/static/js/main.js", "/health/ready", "/classify"} <= paths
    problems = [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" and REFUSAL_LOG not in entry["message"]
    ]
    assert not problems  # no script error, no Content-Security-Policy refusal
