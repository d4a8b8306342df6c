"""Rater identity on the store (harness/store/raters.py), on SQLite and PostgreSQL: hashed credentials,
per-rater queues whose overlap pairs get exactly the configured number of raters, changes of one's own
labels only with every change kept; and schema migrations: a store written by the previous main
(schema 1, tests/fixtures/store_v1.db) opens, migrates and keeps every row."""
from __future__ import annotations

import shutil

import pytest

from harness.store import raters as R
from harness.records import Annotator, Label, Pair
from harness.store import _SCHEMA, SCHEMA_VERSION, Store, StoreError

from conftest import REPO


@pytest.fixture
def store(any_store):
    return any_store


def test_passwords_are_hashed_and_checked(store):
    R.add_rater(store, "ada", "correct horse", role="admin")
    R.add_rater(store, "bob", "battery staple")
    stored = store.query("SELECT password_hash FROM raters WHERE rater_id='ada'")[0]["password_hash"]
    assert "correct horse" not in stored and stored.startswith("scrypt$16384$8$1$")
    dump = repr(store.query("SELECT * FROM raters"))
    assert "correct horse" not in dump and "battery staple" not in dump
    assert R.authenticate(store, "ada", "correct horse") == {"rater_id": "ada", "display_name": "ada", "role": "admin"}
    assert R.authenticate(store, "ada", "battery staple") is None  # bob's password is not ada's
    assert R.authenticate(store, "nobody", "correct horse") is None
    assert [r["rater_id"] for r in R.raters(store)] == ["ada", "bob"] and "password_hash" not in R.raters(store)[0]
    R.set_password(store, "bob", "a new secret")
    assert R.authenticate(store, "bob", "battery staple") is None and R.authenticate(store, "bob", "a new secret")
    with pytest.raises(StoreError, match="exists already"):
        R.add_rater(store, "ada", "another password")
    with pytest.raises(StoreError, match="at least 8"):
        R.add_rater(store, "cy", "short")
    with pytest.raises(StoreError, match="role 'boss'"):
        R.add_rater(store, "cy", "long enough", role="boss")
    with pytest.raises(StoreError, match="rater id"):
        R.add_rater(store, "../x", "long enough")


def _label_queue_dry(store, rater, pool):
    """A rater labels everything their queue offers, one pair at a time (as the Label page does)."""
    done = 0
    while True:
        mine = {r["pair_id"] for r in store.query("SELECT pair_id FROM labels WHERE annotator_id=?",
                                                   (R.annotator_id(rater),))}
        queue = R.rater_queue(store, rater, [p.pair_id for p in pool if p.pair_id not in mine], limit=1)
        if not queue:
            return done
        pair = next(p for p in pool if p.pair_id == queue[0])
        store.add_labels([Label(pair.pair_id, Annotator("human", R.annotator_id(rater), "dashboard-v1"), "A", "AB")],
                         [pair])
        done += 1


def test_queues_give_overlap_pairs_their_raters_and_others_one(store):
    pool = [Pair(prompt=f"p{i}", response_a="a", response_b="b") for i in range(40)]
    store.add_pairs(pool)
    R.set_overlap(store, 0.25, 3)
    overlap = {p.pair_id for p in pool if R.in_overlap(p.pair_id, 0.25)}
    assert 4 <= len(overlap) <= 18  # about a quarter, fixed by the pair ids
    for rater in ("r1", "r2", "r3", "r4"):
        R.add_rater(store, rater, "password-" + rater)
        _label_queue_dry(store, rater, pool)
    per_pair = R.human_raters_per_pair(store, [p.pair_id for p in pool])
    assert {per_pair[p] for p in overlap} == {3}  # every overlap pair: exactly 3 raters, not 4
    assert {per_pair[p.pair_id] for p in pool if p.pair_id not in overlap} == {1}
    status = R.overlap_status(store)
    assert status["overlap_pairs_complete"] == status["overlap_pairs_started"] == len(overlap)
    prog = {r["rater"]: r for r in R.progress(store)}
    assert sum(r["labels"] for r in prog.values()) == 3 * len(overlap) + (40 - len(overlap))
    assert R.rater_queue(store, "r5", [p.pair_id for p in pool]) == []  # a fifth rater: every pair has its raters
    # raters take the pairs in orders of their own, so two raters rarely reach for the same one-rater pair
    ids = [p.pair_id for p in pool]
    assert R.rater_queue(Store(store.home / "x"), "r1", ids) != R.rater_queue(Store(store.home / "x"), "r2", ids)


def test_a_rater_changes_only_their_own_labels_and_every_change_is_kept(store):
    pair = Pair(prompt="p", response_a="a", response_b="b")
    R.add_rater(store, "ada", "password-ada")
    R.add_rater(store, "bob", "password-bob")
    store.add_labels([Label(pair.pair_id, Annotator("human", "human:ada", "dashboard-v1"), "A", "AB", p_a=1.0),
                      Label(pair.pair_id, Annotator("human", "human:bob", "dashboard-v1"), "B", "BA", p_a=0.0)], [pair])
    ada_label = R.my_labels(store, "ada")[0]["label_id"]
    bob_label = R.my_labels(store, "bob")[0]["label_id"]
    assert R.change_label(store, ada_label, "ada", "tie") is True
    assert R.change_label(store, ada_label, "ada", "tie") is False  # same verdict: nothing written
    assert R.change_label(store, ada_label, "ada", "B") is True
    with pytest.raises(StoreError, match="only their own labels; label .* is human:bob's"):
        R.change_label(store, bob_label, "ada", "A")
    with pytest.raises(StoreError, match="verdict 'C'"):
        R.change_label(store, ada_label, "ada", "C")
    changes = R.label_changes(store, "ada")
    assert [(c["old_verdict"], c["new_verdict"], c["old_p_a"], c["new_p_a"]) for c in changes] == [
        ("A", "tie", 1.0, 0.5), ("tie", "B", 0.5, 0.0)]
    assert all(c["label_id"] == ada_label and c["changed_at"] > 0 for c in changes)
    now = {r["annotator_id"]: (r["verdict"], r["p_a"]) for r in store.query("SELECT * FROM labels")}
    assert now == {"human:ada": ("B", 0.0), "human:bob": ("B", 0.0)}  # bob's label untouched
    assert R.label_changes(store, "bob") == []


def test_store_of_the_previous_main_opens_and_migrates(tmp_path):
    """tests/fixtures/store_v1.db was written by main at schema 1 (dbc6175): 4 pairs, 7 labels, a run."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "tests" / "fixtures" / "store_v1.db", home / "harness.db")
    store = Store(home)
    assert SCHEMA_VERSION == 4 and store.meta("schema_version") == "4" and store.meta("migrated_from") == "1"
    assert store.counts() == {"runs": 1, "pairs": 4, "labels": 7, "samples": 0, "results": 1, "metrics": 1}
    assert {r["annotator_id"] for r in store.query("SELECT annotator_id FROM labels")} == {"human:Ada", "judge"}
    R.add_rater(store, "Ada", "password-ada")  # the new tables work on the migrated file
    label = R.my_labels(store, "Ada")[0]["label_id"]
    assert R.change_label(store, label, "Ada", "B") and len(R.label_changes(store)) == 1
    assert Store(home).meta("schema_version") == "4"  # opening again migrates nothing


def test_postgres_store_at_schema_1_migrates(tmp_path, pg_url):
    import psycopg

    from harness.store.backends import pg_schema

    with psycopg.connect(pg_url, autocommit=True) as db:  # what the previous main's schema is, on PostgreSQL
        for stmt in pg_schema(_SCHEMA).split(";"):
            if stmt.strip():
                db.execute(stmt)
        db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        db.execute("INSERT INTO pairs (pair_id, prompt, response_a, response_b, created_at) VALUES ('p1','q','a','b',0)")
    store = Store(tmp_path / "h", url=pg_url)
    assert store.meta("schema_version") == "4" and store.meta("migrated_from") == "1"
    assert store.counts()["pairs"] == 1 and R.raters(store) == []
