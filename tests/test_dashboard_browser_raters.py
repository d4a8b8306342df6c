"""Two raters in a real headless chromium against a dashboard served on a shared PostgreSQL store
(`harness --store URL dashboard`): each logs in in a browser context of their own, is shown the
first pair of their own queue, labels it, and sees only their own count; the store holds each label
under its rater. Needs Debian's chromium (make browser-deps) and HARNESS_TEST_PG (make test)."""
from __future__ import annotations

import pytest

from dashboard_data import harness
from dashboards import queries as Q
from harness.store import raters as R
from harness.store import Store
from harness.store.filters import LabelFilter
from test_dashboard_browser import CHROMIUM, _screenshot, _settle, serve
from test_dashboard_browser import browser, shots  # noqa: F401  (fixtures: one chromium, the screenshot folder)

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} missing: run `make browser-deps`"),
              pytest.mark.timeout(600)]


@pytest.fixture
def served_team(tmp_path, shared_data, pg_url, monkeypatch):
    home = tmp_path / "team"
    monkeypatch.setenv("HARNESS_STORE", pg_url)  # harness() and the server both use the shared store
    monkeypatch.setenv("ADA_PW", "ada-password")
    monkeypatch.setenv("BOB_PW", "bob-password")
    harness(home, "import-labels", "--source-format", "pandalm", str(shared_data / "pandalm_testset"), "--limit", "40")
    harness(home, "raters", "add", "ada", "--password-env", "ADA_PW")
    harness(home, "raters", "add", "bob", "--password-env", "BOB_PW")
    harness(home, "raters", "overlap", "0.3", "2")
    with serve(home, tmp_path / "streamlit.log") as url:  # the environment carries HARNESS_STORE
        yield url, Store(home, url=pg_url)


def _log_in(browser, url: str, rater_id: str, password: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})  # a session of its own
    page = context.new_page()
    page.goto(f"{url}/label", wait_until="domcontentloaded")
    page.get_by_role("textbox", name="Rater id").wait_for(timeout=60000)
    page.get_by_role("textbox", name="Rater id").fill(rater_id)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("button", name="A is better").wait_for(timeout=60000)
    _settle(page)
    return context, page


def test_two_raters_label_their_own_queues_in_the_browser(served_team, browser, shots):  # noqa: F811
    url, store = served_team
    ada_ctx, ada = _log_in(browser, url, "ada", "ada-password")
    bob_ctx, bob = _log_in(browser, url, "bob", "bob-password")
    try:
        # each one's queue, computed here from the store as the page computes it (before any click)
        first = {}
        for rater in ("ada", "bob"):
            ids = store.pair_ids(Q.source_filter("disagree", R.annotator_id(rater)))
            first[rater] = R.rater_queue(store, rater, ids, limit=10)[0]
        for page, rater in ((ada, "ada"), (bob, "bob")):
            assert f"logged in as {rater}" in page.locator('[data-testid="stSidebar"]').inner_text()
            prompt = store.get_pairs([first[rater]])[0].prompt
            assert page.locator('[data-testid="stCode"]').first.inner_text().strip() == prompt.strip()
        _screenshot(ada, shots / "label_rater_ada.png")
        ada.get_by_role("button", name="A is better").click()
        ada.get_by_text("Saved:").wait_for(timeout=60000)
        bob.get_by_role("button", name="B is better").click()
        bob.get_by_text("Saved:").wait_for(timeout=60000)
        _settle(ada)
        _settle(bob)
        _screenshot(bob, shots / "label_rater_bob.png")
        for page in (ada, bob):
            assert page.get_by_text("1 label(s) by you").count() == 1
            assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        ada_ctx.close()
        bob_ctx.close()
    got = {r: store.labels_df(LabelFilter(annotators=[R.annotator_id(r)])) for r in ("ada", "bob")}
    assert len(got["ada"]) == 1 and len(got["bob"]) == 1
    assert got["ada"].iloc[0]["pair_id"] == first["ada"] and got["bob"].iloc[0]["pair_id"] == first["bob"]
