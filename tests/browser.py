"""A real browser for the tests: headless Chromium (Debian's ``chromium`` and
``chromium-driver``), driven by Selenium.

Without them a test that needs one is skipped, with the reason; ``.ci/run`` installs them
and sets ``VISTRIT_REQUIRE_BROWSER=1``, which turns that skip into a failure.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def headless_chromium(what: str) -> Any:
    """A headless Chromium (a Selenium driver; the caller quits it), or a skip saying why
    *what* cannot be tested in one."""
    missing = []
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (pip install selenium)")
    if CHROMIUM is None or CHROMEDRIVER is None:
        missing.append("chromium and chromium-driver (apt-get install chromium chromium-driver)")
    if missing:
        reason = f"no browser to test {what} in: " + "; ".join(missing)
        if os.environ.get("VISTRIT_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1400,1000"):  # fmt: skip
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
