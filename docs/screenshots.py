"""Take the dashboard screenshots in docs/images/ from a real run.

    python3 docs/screenshots.py    (needs selenium, and Chromium with its driver)

Three coordinators (each with a journal and its dashboard) and three workers (two slots
each, ``--tasks shapes``) on this machine; a run of tasks, some slow, one that raises;
then the leader is killed, the next one takes over, and more tasks run. Each page is
photographed from the new leader's dashboard, and the follower's banner from the other
coordinator's. Everything started is stopped at the end.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from vistrit.client import VistritClient
from vistrit.demo import ProcessGroup, wait_for_workers
from vistrit.results import TaskError

DOCS = Path(__file__).resolve().parent
IMAGES = DOCS / "images"


def browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--hide-scrollbars"):  # fmt: skip
        options.add_argument(argument)
    return webdriver.Chrome(
        options=options, service=Service(shutil.which("chromedriver") or "chromedriver")
    )


def shoot(driver: webdriver.Chrome, url: str, name: str, ready: str) -> None:
    """Open *url*, wait until *ready* (a CSS selector) is drawn, and save the page."""
    driver.get(url)
    WebDriverWait(driver, 20, 0.1).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ready), message=f"{name}: {ready}"
    )
    driver.execute_script("document.getElementById('view').dispatchEvent(new Event('mouseenter'))")
    time.sleep(0.3)  # let the last fetch land; the page then holds still under the "pointer"
    driver.save_screenshot(str(IMAGES / f"dashboard-{name}.png"))
    print(f"docs/images/dashboard-{name}.png")


def main() -> int:
    IMAGES.mkdir(exist_ok=True)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(DOCS / "examples"), *sys.path])
    sys.path.insert(0, str(DOCS / "examples"))
    import shapes

    group = ProcessGroup()
    driver = browser()
    with tempfile.TemporaryDirectory() as directory:
        os.chdir(directory)  # the journals' paths, shown on the pages, are then "run/..."
        Path("run").mkdir()
        try:
            started = group.start_coordinators(
                3, "--dashboard", "127.0.0.1:0", log_dir=Path("run"), data=True
            )
            urls = {rank: group.first_line(p, "dashboard").rsplit(" ", 1)[-1]
                    for rank, (p, _) in started.items()}  # fmt: skip
            addresses = ",".join(address for _, address in started.values())
            for name in ("ada", "grace", "linus"):
                group.start_worker(addresses, name, "--slots", "2", "--tasks", "shapes")
            with VistritClient(addresses) as client:
                wait_for_workers(client, 3)
                client.gather(client.map("bench-sleep", [b"0.2"] * 12), 60)
                try:
                    client.submit(shapes.stats, [], name="stats of nothing").result(30)
                except TaskError:
                    pass
                client.gather([client.submit(shapes.area, n, 2) for n in range(30)], 60)
                started[3][0].send_signal(signal.SIGKILL)  # the leader
                started[3][0].wait()
                client.gather(client.map("bench-sleep", [b"0.3", b"0.1"] * 6), 60)
                running = client.map("bench-sleep", [b"3"] * 3)
                leader, follower = urls[2].split("?")[0], urls[1].split("?")[0]
                driver.get(urls[2])
                driver.get(urls[1])
                shoot(driver, leader, "cluster", "tr[data-worker]")
                shoot(driver, leader + "#stream", "stream", "#stream rect.task-bar")
                shoot(driver, leader + "#tasks", "tasks", "tr[data-task]")
                failed = client.tasks(state="Failed")[0]
                shoot(driver, leader + f"#task/{failed.id}", "task", "#traceback")
                shoot(driver, leader + "#elections", "elections", "table")
                driver.get(leader + "#frames")
                WebDriverWait(driver, 20, 0.1).until(
                    lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-frame]"), "frames"
                )
                submit = driver.execute_script(
                    "const r = [...document.querySelectorAll('tr[data-frame]')]"
                    ".find(r => r.innerText.includes('TaskSubmit')); return r && r.dataset.frame;"
                )
                shoot(driver, leader + f"#frames?frame={submit}", "frame", "#byte-table")
                shoot(driver, follower, "follower", "#banner:not([hidden])")
                client.gather(running, 60)
        finally:
            driver.quit()
            group.stop_all()
            os.chdir(DOCS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
