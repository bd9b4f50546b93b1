"""Headless Chromium driven by Selenium, for tests of the built-in viewer.

Debian's `chromium` and `chromium-driver` (installed by deploy/install-system-deps.sh) are used by
their paths, so Selenium Manager never runs and never reaches the network (SE_AVOID_STATS as well).
Chromium's own background traffic (updates, sync, field trials) is switched off, and every host name
other than 127.0.0.1 resolves to nothing: a page that tried to load anything from outside would fail
and show up in the performance log that `request_urls` reads.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # CI runs the tests as root
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--force-device-scale-factor=1",
)


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install -e '.[dev]')"
    for tool, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not tool.is_file():
            return f"{tool} is absent (Debian package {package}; deploy/install-system-deps.sh installs it)"
    return None


@contextmanager
def headless_chromium(width: int = 1366, height: int = 768) -> Iterator[Any]:
    """A Chromium WebDriver with the performance (network) log on; quit on the way out."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    previous = os.environ.get("SE_AVOID_STATS")
    os.environ["SE_AVOID_STATS"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*_FLAGS, f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        if previous is None:
            os.environ.pop("SE_AVOID_STATS", None)
        else:
            os.environ["SE_AVOID_STATS"] = previous


def request_urls(driver: Any) -> list[str]:
    """Every URL the browser asked for since the last call (DevTools Network.requestWillBeSent);
    data: URLs (the API's PNGs drawn on canvases) are cut to their scheme."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            url = str(message["params"]["request"]["url"])
            urls.append("data:" if url.startswith("data:") else url)
    return urls
