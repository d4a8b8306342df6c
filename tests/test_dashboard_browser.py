"""The dashboards in a real headless chromium (Debian's /usr/bin/chromium, driven by Playwright).

Starts the app exactly as `harness dashboard` does (its command line, on 127.0.0.1 and a free
port) against a store built from the real PandaLM data, loads every page, waits for its content,
saves a screenshot (under $HARNESS_SCREENSHOTS, else the test's tmp dir), fails on any
`stException`, and labels one pair through the browser and finds the label in the store.
`make browser-deps` installs chromium; without it these tests skip.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from harness.store.filters import LabelFilter

from dashboard_data import build_store

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} missing: run `make browser-deps`"),
              pytest.mark.timeout(600)]

# url path, heading, a selector that appears once the page's data is drawn
PAGES = [
    # the front page: the demo study, or the note that this store holds none yet
    ("", "Overview", '[data-testid="stVegaLiteChart"], [data-testid="stAlert"]'),
    # the study's replication table, or the note that this store holds none yet
    ("replication", "Replication", '[data-testid="stVegaLiteChart"], [data-testid="stAlert"]'),
    ("leaderboard", "Leaderboard", '[data-testid="stVegaLiteChart"]'),
    ("training", "Training", '[data-testid="stVegaLiteChart"]'),
    ("controllability", "Controllability", '[data-testid="stVegaLiteChart"]'),
    ("annotators", "Annotators", '[data-testid="stVegaLiteChart"]'),
    # the cards table, or the note that this store holds none yet
    ("validity", "Judge validity", '[data-testid="stDataFrame"], [data-testid="stAlert"]'),
    ("pair_browser", "Pair browser", '[data-testid="stDataFrame"]'),
    ("label", "Label", '[data-testid="stTextInput"]'),
    # no raters registered on this store: the note saying how to add them
    ("raters", "Raters", '[data-testid="stAlert"]'),
    # the annotators-vs-gold table, or the note that no `harness agreement --gold` result is stored
    ("gold", "Annotators vs gold", '[data-testid="stDataFrame"], [data-testid="stAlert"]'),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory, shared_data):
    home = tmp_path_factory.mktemp("browser_home")
    store = build_store(home, shared_data)
    with serve(home, home / "streamlit.log") as url:
        yield url, store


@contextlib.contextmanager
def serve(home: Path, log_path: Path):
    """`harness dashboard`'s own command line on 127.0.0.1 and a free port, with the Label page's queue
    seeded (the same on every run); yields the URL once the server answers its health check."""
    from harness.commands.dashboard import command

    port = _free_port()
    cmd, env = command(argparse.Namespace(home=str(home), port=port, address="127.0.0.1"))
    env["HARNESS_LABEL_SEED"] = "0"
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"streamlit did not come up: {log_path.read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()  # by PID, the server this fixture started
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                    "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    d = Path(os.environ.get("HARNESS_SCREENSHOTS") or tmp_path_factory.mktemp("screens"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _settle(page, timeout_ms: int = 60000) -> None:
    """Wait until the script run is over (the app marks its state on the root element)."""
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout_ms)


def _screenshot(page, path: Path) -> None:
    """The whole page: Streamlit scrolls inside its main block, so grow the viewport to fit it."""
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": max(1000, min(int(height) + 40, 8000))})
    page.wait_for_timeout(1000)  # let vega redraw at the new size
    page.screenshot(path=str(path), full_page=True)


@pytest.mark.parametrize("path,heading,ready", PAGES, ids=[p[1] for p in PAGES])
def test_page_renders_without_exception(served, browser, shots, path, heading, ready):
    url, _ = served
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{url}/{path}", wait_until="domcontentloaded")
        page.get_by_role("heading", name=heading, exact=True).first.wait_for(timeout=60000)
        page.wait_for_selector(ready, timeout=60000)
        _settle(page)
        _screenshot(page, shots / f"{path or 'overview'}.png")
        assert page.locator('[data-testid="stException"]').count() == 0, page.locator(
            '[data-testid="stException"]').first.inner_text()
        # st.navigation's pages (not a pages/ folder listing), and the deep link was found
        nav = page.locator('[data-testid="stSidebarNavLink"]')
        assert sorted(x.inner_text().split("\n")[-1] for x in nav.all()) == sorted(p[1] for p in PAGES)
        assert page.get_by_text("Page not found").count() == 0
    finally:
        page.close()


def test_label_one_pair_through_the_browser(served, browser, shots):
    url, store = served
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{url}/label", wait_until="domcontentloaded")
        page.get_by_role("heading", name="Label", exact=True).first.wait_for(timeout=60000)
        box = page.get_by_role("textbox", name="Your name")
        box.fill("Browser Tester")
        box.press("Enter")
        page.get_by_role("button", name="A is better").wait_for(timeout=60000)
        _settle(page)
        _screenshot(page, shots / "label_pair.png")
        page.get_by_role("button", name="A is better").click()
        page.get_by_text("Saved:").wait_for(timeout=60000)
        _settle(page)
        _screenshot(page, shots / "label_saved.png")
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        page.close()
    got = store.labels_df(LabelFilter(annotators=["human:Browser Tester"]))
    assert len(got) == 1
    row = got.iloc[0]
    assert row["annotator_kind"] == "human" and row["annotator_version"] == "dashboard-v1"
    # 'A is better' clicked: response shown on the left wins, whichever canonical side that was.
    assert row["verdict"] == ("A" if row["shown_order"] == "AB" else "B")
    assert row["raw_output"] == "left"
