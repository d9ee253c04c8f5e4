"""The dashboard in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by Selenium) against a live cluster of real processes started
by the CLI. The page shows the workers and the counts, follows a worker's death, draws
the task stream, opens a task's page and a frame's byte table, and refuses without the
token.

Without Chromium these tests are skipped, with the reason; ``.ci/run`` installs it and
sets ``VISTRIT_REQUIRE_BROWSER=1``, which turns that skip into a failure.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import headless_chromium
from spawn import Processes, stop_all

from vistrit.client import VistritClient
from vistrit.demo import wait_for_workers

pytestmark = pytest.mark.timeout(120)

WAIT = 20  # seconds: the most any page change may take


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    driver = headless_chromium("the dashboard")
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A coordinator with its dashboard and two workers, all started by the CLI."""
    group = Processes(tmp_path, dict(os.environ))
    try:
        coordinator, ready = group.start(
            "coordinator", "--bind", "127.0.0.1:0", "--dashboard", "127.0.0.1:0"
        )
        address = ready.rsplit(" ", 1)[-1]
        assert coordinator.stdout is not None
        url = coordinator.stdout.readline().strip().rsplit(" ", 1)[-1]
        workers = {}
        for name in ("alpha", "beta"):
            workers[name], _ = group.start("worker", "--coordinator", address, "--name", name)
        with VistritClient(address) as client:
            wait_for_workers(client, 2)
            yield {"url": url, "client": client, "workers": workers}
    finally:
        stop_all(group)


def _until(browser: Any, condition: Any, what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, WAIT, poll_frequency=0.1).until(condition, message=what)


def _text(browser: Any, css: str) -> str:
    """The text of the first element *css* selects ("" if none; the page is redrawn every
    second, so an element found may be replaced before it is read: read it again)."""
    return str(
        browser.execute_script(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", css
        )
    )


def _click(browser: Any, css: str) -> None:
    """Click the first element *css* selects, as a user would: the pointer on the page
    first (the page holds still under it), then on the element (again if it was redrawn
    meanwhile)."""
    from selenium.common.exceptions import (
        ElementClickInterceptedException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    def attempt(b: Any) -> bool:
        try:
            ActionChains(b).move_to_element(b.find_element(By.CSS_SELECTOR, "main")).perform()
            b.find_element(By.CSS_SELECTOR, css).click()
        except (StaleElementReferenceException, ElementClickInterceptedException):
            return False
        return True

    _until(browser, attempt, f"a click on {css}")


def _count(browser: Any, css: str) -> int:
    from selenium.webdriver.common.by import By

    return len(browser.find_elements(By.CSS_SELECTOR, css))


def test_the_page_shows_the_workers_and_counts_and_follows_a_death(
    browser: Any, live: dict[str, Any]
) -> None:
    browser.get(live["url"])
    _until(browser, lambda b: _count(b, "tr[data-worker]") == 2, "both workers listed")
    assert browser.current_url.endswith("/")  # the token left the address bar
    names = {
        row.get_attribute("data-name")
        for row in browser.find_elements("css selector", "tr[data-worker]")
    }
    assert names == {"alpha", "beta"}
    client = live["client"]
    client.gather([client.submit("echo", b"x") for _ in range(12)], 30)
    _until(browser, lambda b: _text(b, "#count-completed b") == "12", "12 completed shown")
    assert _count(browser, "#throughput rect") >= 1  # the throughput chart has its bar
    beta = live["workers"]["beta"]
    beta.send_signal(signal.SIGKILL)
    beta.wait(10)
    _until(browser, lambda b: _count(b, 'tr[data-gone][data-name="beta"]') == 1, "beta gone")
    assert _count(browser, "tr[data-worker]") == 1
    assert _text(browser, "#count-workers b") == "1"


def test_the_stream_the_task_page_and_a_frames_bytes(browser: Any, live: dict[str, Any]) -> None:
    client = live["client"]
    futures = [client.submit("echo", b"x", name=f"echo-{n}") for n in range(6)]
    client.gather(futures, 30)
    browser.get(live["url"])
    browser.get(live["url"].split("?")[0] + "#stream")
    _until(browser, lambda b: _count(b, "#stream rect.task-bar") >= 6, "the stream's bars")
    _click(browser, "#stream rect.task-bar:last-of-type")  # drawn last: on top
    _until(browser, lambda b: _count(b, "#task") == 1, "a task's page")
    assert "Completed" in _text(browser, "#task")
    browser.get(live["url"].split("?")[0] + "#tasks?state=Completed")
    _until(browser, lambda b: _count(b, "tr[data-task]") >= 6, "the task list")
    browser.get(live["url"].split("?")[0] + "#frames")
    _until(browser, lambda b: _count(b, "tr[data-frame]") >= 1, "sampled frames")
    _click(browser, "tr[data-frame] a")
    _until(browser, lambda b: _count(b, "#byte-table") == 1, "a byte table")
    assert "magic" in browser.page_source and "checksum" in browser.page_source


def test_without_the_token_the_browser_is_refused(browser: Any, live: dict[str, Any]) -> None:
    browser.delete_all_cookies()
    base = live["url"].split("?")[0]
    browser.get(base)
    assert "needs its token" in browser.page_source
    assert _count(browser, "tr[data-worker]") == 0
    browser.get(base + "?token=" + "0" * 32)
    assert "needs its token" in browser.page_source
    browser.get(base + "api/cluster")
    assert "needs its token" in browser.page_source and "alpha" not in browser.page_source
