"""`biomae review` in a real headless browser, as a user: open the printed URL, play an event,
accept one, reject one, relabel one, move an edge (keyboard and mouse), draw a missed call, reload:
every decision is on the page and in OUT/review.csv.

Needs Chromium and its driver (Debian: ``apt-get install chromium chromium-driver``) and the
``selenium`` package; skipped with the reason where they are absent. With
``BIOMAE_REVIEW_SCREENSHOT=PATH`` it also saves a screenshot of the page (docs/review.png).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time

import pandas as pd
import pytest

from biomae.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM and DRIVER),
        reason="no chromium / chromedriver: apt-get install chromium chromium-driver",
    ),
]
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
pytest.importorskip("starlette", reason="the review extra (pip install biomae[review])")


@pytest.fixture
def served(example_path, tmp_path):
    """`biomae review OUT` running on the bundled example (energy detector, 11 events)."""
    out = tmp_path / "out"
    assert main(["annotate", str(example_path), "--out", str(out), "--detector", "energy"]) == 0
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    argv = [sys.executable, "-m", "biomae", "review", str(out), "--no-browser"]
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    try:
        url = next(m[0] for line in server.stdout if (m := re.search(r"http://\S+token=\S+", line)))
        yield url, out
    finally:
        server.kill()
        server.wait()


@pytest.fixture
def browser():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    flags = ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900"]
    for flag in [*flags, "--autoplay-policy=no-user-gesture-required"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def wait_for(condition, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception:  # the page is still loading
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {condition}")


def statuses(driver) -> dict[str, str]:
    rows = driver.find_elements("css selector", "#rows tr")
    return {r.get_attribute("data-id"): r.get_attribute("data-status") for r in rows}


def test_a_reviewer_session(served, browser):
    from selenium.webdriver.common.action_chains import ActionChains

    url, out = served
    base = url.split("?")[0]
    browser.get(base)  # without the token: refused
    assert "403" in browser.page_source
    browser.get(url)
    wait_for(lambda: len(statuses(browser)) == 11)
    body = browser.find_element("tag name", "body")
    current = "return document.querySelector('#rows tr.current').dataset.id"
    info = lambda: browser.find_element("id", "info").text  # noqa: E731

    # play the first event: the clip loads and plays
    wait_for(lambda: "data/example:0" in info())
    body.send_keys(" ")
    assert wait_for(lambda: browser.execute_script(
        "const p = document.getElementById('player'); return p.error === null && p.duration > 0"
        " && (p.currentTime > 0 || !p.paused)"))  # fmt: skip

    body.send_keys("a")  # accept event 0, go to 1
    wait_for(lambda: browser.execute_script(current) == "data/example:1")
    body.send_keys("r")  # reject event 1, go to 2
    wait_for(lambda: browser.execute_script(current) == "data/example:2")
    body.send_keys("l")  # relabel event 2
    label = browser.find_element("id", "label-input")
    label.clear()
    label.send_keys("trill\n")
    wait_for(lambda: "label trill" in info())
    body.send_keys("]")  # its start moves 10 ms later
    wait_for(lambda: "start_s" in info())

    browser.find_element("css selector", "#rows tr[data-id='data/example:3']").click()
    wait_for(lambda: "data/example:3" in info())
    wait_for(lambda: browser.execute_script("return state.image !== null"))
    end_x = browser.execute_script("return xOf(state.event.end_s) - canvas.width / 2")
    canvas = browser.find_element("id", "canvas")
    (ActionChains(browser).move_to_element_with_offset(canvas, round(end_x), 0)
     .click_and_hold().move_by_offset(40, 0).release().perform())  # fmt: skip
    wait_for(lambda: "changed: end_s" in info())

    body.send_keys("n")  # draw a missed call near the right edge of the view
    (ActionChains(browser).move_to_element_with_offset(canvas, 300, -60)
     .click_and_hold().move_by_offset(60, 80).release().perform())  # fmt: skip
    wait_for(lambda: "data/example:added-0" in statuses(browser))
    if path := os.environ.get("BIOMAE_REVIEW_SCREENSHOT"):
        browser.save_screenshot(path)

    browser.refresh()  # everything is still there after a reload
    wait_for(lambda: len(statuses(browser)) == 12)
    seen = statuses(browser)
    assert seen["data/example:0"] == "accepted" and seen["data/example:1"] == "rejected"
    assert seen["data/example:2"] == "accepted" and seen["data/example:3"] == "accepted"
    assert seen["data/example:added-0"] == "added"
    table = pd.read_csv(out / "review.csv", keep_default_na=False).set_index("event_id")
    assert table.loc["data/example:2", "label"] == "trill"
    assert table.loc["data/example:2", "changed"] == "start_s;label"
    assert table.loc["data/example:3", "changed"] == "end_s"
    moved = table.loc["data/example:3"]
    assert float(moved["end_s"]) > float(moved["orig_end_s"])
    assert table.loc["data/example:added-0", "status"] == "added"

    browser.get(base + "api/audio/..%2F..%2F..%2Fetc%2Fpasswd")  # the cookie is set: still 404
    assert "root:" not in browser.page_source
    browser.get(url)  # the summary page: the detector's precision from the reviewed sample
    wait_for(lambda: len(statuses(browser)) == 12)
    browser.find_element("id", "tab-summary").click()
    wait_for(lambda: "precision" in browser.find_element("id", "summary").text)
    assert "75.0%" in browser.find_element("id", "summary").text  # 3 of 4 reviewed detections
