"""Rater identity in the dashboards (AppTest): a store with registered raters asks for a login on the
Label page; two raters each label from a queue of their own under their own id; a rater changes their
own label (the change is kept) and the admin page shows progress per rater, to admins only. The
store holds 30 real PandaLM records imported with `harness import-labels`; raters are added with
`harness raters add` (password from the environment, stored hashed)."""
from __future__ import annotations


import pytest
from streamlit.testing.v1 import AppTest

from dashboard_data import harness
from test_dashboard_apptest import open_page as page  # a page in a fresh, seeded session
from harness.store import raters as R
from harness.store import Store
from harness.store.filters import LabelFilter

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def team(tmp_path, shared_data, monkeypatch):
    home = tmp_path / "team"
    harness(home, "import-labels", "--source-format", "pandalm", str(shared_data / "pandalm_testset"), "--limit", "30")
    monkeypatch.setenv("ADA_PW", "ada-password")
    monkeypatch.setenv("BOB_PW", "bob-password")
    harness(home, "raters", "add", "ada", "--role", "admin", "--password-env", "ADA_PW")
    harness(home, "raters", "add", "bob", "--password-env", "BOB_PW")
    harness(home, "raters", "overlap", "0.5", "2")
    monkeypatch.setenv("HARNESS_HOME", str(home))
    return Store(home)


def login(at: AppTest, rater_id: str, password: str) -> AppTest:
    at.text_input(key="login_id").input(rater_id)
    at.text_input(key="login_password").input(password)
    at.button(key="login_submit").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def labels_of(store: Store, rater_id: str):
    return store.labels_df(LabelFilter(annotators=[R.annotator_id(rater_id)]))


def test_two_raters_label_their_own_queues_and_change_their_own_labels(team):
    ada = page("label", seed=1)
    assert [b.key for b in ada.button] == ["login_submit"]  # nothing to label before the login
    login(ada, "ada", "wrong password")
    assert [e.value for e in ada.error] == ["Unknown rater id or wrong password."]
    login(ada, "ada", "ada-password")
    bob = login(page("label", seed=2), "bob", "bob-password")
    ada.selectbox(key="lab_source").set_value("Dataset pandalm").run()
    bob.selectbox(key="lab_source").set_value("Dataset pandalm").run()
    queue_ada = [s.pair.pair_id for s in ada.session_state["lab_queue"]]
    queue_bob = [s.pair.pair_id for s in bob.session_state["lab_queue"]]
    fraction, _ = R.overlap(team)
    assert queue_ada != queue_bob  # each rater's own order...
    # ...overlap pairs first, in both queues (agreement needs their second rater)
    for q in (queue_ada, queue_bob):
        flags = [R.in_overlap(p, fraction) for p in q]
        assert flags == sorted(flags, reverse=True)
    first_ada = ada.session_state["lab_queue"][0]
    ada.button(key="lab_A").click().run()
    bob.button(key="lab_B").click().run()
    bob.button(key="lab_tie").click().run()
    got_ada, got_bob = labels_of(team, "ada"), labels_of(team, "bob")
    assert len(got_ada) == 1 and len(got_bob) == 2
    assert got_ada.iloc[0]["pair_id"] == first_ada.pair.pair_id
    assert any("1 label(s) by you" in c.value for c in ada.caption)
    assert any("2 label(s) by you" in c.value for c in bob.caption)
    assert any("logged in as `bob` (rater)" in c.value for c in bob.sidebar.caption)

    # ada changes her label; bob's labels cannot be picked on her page, and the store refuses it anyway
    label_id = int(got_ada.iloc[0]["label_id"])
    assert ada.selectbox(key="lab_change_id").options == [str(label_id)]
    new = "tie" if got_ada.iloc[0]["verdict"] != "tie" else "A"
    ada.selectbox(key="lab_change_to").set_value(new).run()
    ada.button(key="lab_change").click().run()
    assert labels_of(team, "ada").iloc[0]["verdict"] == new
    (change,) = R.label_changes(team)
    assert (change["rater_id"], change["label_id"], change["old_verdict"], change["new_verdict"]) == (
        "ada", label_id, got_ada.iloc[0]["verdict"], new)

    # the admin page: progress per rater for ada (admin), refused to bob
    admin = login(page("raters", seed=3), "ada", "ada-password")
    progress = admin.dataframe[0].value.set_index("rater")
    assert progress.loc["ada", "labels"] == 1 and progress.loc["bob", "labels"] == 2
    assert progress.loc["ada", "changes"] == 1
    assert admin.dataframe[-1].value["new_verdict"].tolist() == [new]
    # ada and bob on the same 6 pairs: the admin page shows their agreement, as the statistics module gives it
    from harness.evaluation.agreement import human_reliability
    from harness.evaluation.frames import label_frame

    from dashboards.queries import Shown, make_label

    for i, pair in enumerate(team.get_pairs([p for p in queue_ada if p not in set(got_bob["pair_id"])][:6])):
        for who, choice in (("ada", "A"), ("bob", "A" if i % 3 else "B")):
            R.add_rater_label(team, who, make_label(Shown(pair, "AB"), who, choice), pair)
    admin = login(page("raters", seed=5), "ada", "ada-password")
    shown = admin.dataframe[1].value
    expected = human_reliability(label_frame(team, annotators=["human:ada", "human:bob"]))
    assert shown["n_items"].tolist() == expected["n_items"].tolist() and shown["n_items"].iloc[0] >= 6
    assert shown["fleiss_kappa"].tolist() == pytest.approx(expected["fleiss_kappa"].tolist())
    refused = login(page("raters", seed=4), "bob", "bob-password")
    assert [e.value for e in refused.error] == ["`bob` is a rater; this page is for admins."]


def test_log_out_forgets_the_rater(team):
    at = login(page("label", seed=5), "bob", "bob-password")
    assert at.session_state["rater"]["rater_id"] == "bob"
    at.sidebar.button(key="logout").click().run()
    assert "rater" not in at.session_state and [b.key for b in at.button] == ["login_submit"]


PAGES = ["overview", "replication", "leaderboard", "training", "controllability", "annotators", "validity", "gold",
         "pair_browser", "label"]


def test_every_page_renders_on_a_postgres_store(tmp_path, shared_data, pg_url, monkeypatch):
    """The dashboard store of the other page tests, built by the same commands on PostgreSQL: every page
    runs its queries there without an exception, and the pair browser counts what the store holds."""
    from dashboard_data import build_store

    monkeypatch.setenv("HARNESS_STORE", pg_url)
    home = tmp_path / "pg_home"
    store = build_store(home, shared_data, n_boot=20)
    assert store.backend.name == "postgresql" and store.counts()["labels"] > 5000
    monkeypatch.setenv("HARNESS_HOME", str(home))
    for name in PAGES:
        at = page(name, seed=0)  # fails on any exception of the page
    at.text_input(key="lab_name").input("Pg Tester").run()
    at.button(key="lab_A").click().run()
    assert len(store.labels_df(LabelFilter(annotators=["human:Pg Tester"]))) == 1
