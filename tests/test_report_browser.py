"""The chaos report in a real browser: a run of real processes, its ``report.html``
opened from disk in headless Chromium. The Lamport diagram is drawn (an arrow per frame,
the faults on the nodes' lines), the families can be shown and hidden, and a click on an
arrow shows the frame decoded, with its byte table.

Without Chromium this is skipped, with the reason (``.ci/run`` forbids the skip).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from browser import headless_chromium
from spawn import Processes

from vistrit.chaos.history import read_lines
from vistrit.chaos.report import SHOWN, family

pytestmark = pytest.mark.timeout(240)


def test_the_report_draws_the_run_and_decodes_a_clicked_frame(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    out = tmp_path / "run"
    run = Processes(tmp_path, dict(os.environ)).run(
        "chaos", "--coordinators", "2", "--workers", "2", "--clients", "1", "--tasks", "12",
        "--work-ms", "100", "--nemesis", "kill", "--interval", "0.3", "--fault-duration", "1",
        "--seed", "4", "--out", str(out), timeout=180,
    )  # fmt: skip
    assert run.returncode in (0, 1), run.stderr
    frames = read_lines(out / "frames.jsonl")
    browser: Any = headless_chromium("the chaos report")
    try:
        browser.get((out / "report.html").as_uri())
        drawn = browser.find_elements(By.CSS_SELECTOR, "svg.lamport line.frame")
        assert len(drawn) == len(frames) > 0
        shown = [line for line in drawn if line.is_displayed()]
        assert len(shown) == sum(family(f["type"]) in SHOWN for f in frames) > 0
        box = browser.execute_script(
            "const b = document.querySelector('svg.lamport:not(.header)').getBBox();"
            "return [b.width, b.height]"
        )
        assert box[0] > 200 and box[1] > 200  # drawn, not an empty element
        assert browser.find_elements(By.CSS_SELECTOR, "svg.lamport line.kill")  # the fault
        names = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "svg.lamport text.node")]
        assert names == ["client1", "c1", "c2", "w1", "w2"] * 2  # in view, and over the lines
        browser.execute_script("document.getElementById('lamport-box').scrollTop = 600")
        header = browser.find_element(By.CSS_SELECTOR, "svg.header")
        box = browser.find_element(By.ID, "lamport-box")
        assert header.is_displayed() and abs(header.location["y"] - box.location["y"]) <= 2

        browser.find_element(By.CSS_SELECTOR, 'input[data-family="heartbeat"]').click()
        beats = sum(family(f["type"]) == "heartbeat" for f in frames)
        assert beats and len([x for x in drawn if x.is_displayed()]) == len(shown) + beats

        submit = next(i for i, f in enumerate(frames) if f["type"] == "TaskSubmit")
        arrow = browser.find_element(By.CSS_SELECTOR, f'line.frame[data-i="{submit}"]')
        browser.execute_script(
            "arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", arrow
        )
        detail = browser.find_element(By.ID, "detail").text
        assert f"TaskSubmit: client1 → {frames[submit]['to']}" in detail
        assert "magic" in detail and "0x10 = TaskSubmit" in detail  # the byte table
        link = browser.find_element(By.CSS_SELECTOR, "#detail a").get_attribute("href")
        assert link.endswith("protocol.html#tasksubmit-variant-5-type-0x10")  # its section
        assert "chosen" in arrow.get_attribute("class")
        assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        browser.quit()
