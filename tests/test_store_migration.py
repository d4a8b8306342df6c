"""A store written by the previous main (tests/fixtures/store_prev_main/harness.db, made by its make.py
with the code of 132c6f7, schema version 2) opens with today's code, migrates, and reads back every row
the old code wrote with the same values; new writes work on it; a store newer than the code is refused."""
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from harness.store import raters as R
from harness.records import Annotator, Label, Pair
from harness.store import MIGRATIONS, SCHEMA_VERSION, Store, StoreError, label_cache_key

FIXTURE = Path(__file__).parent / "fixtures" / "store_prev_main" / "harness.db"


@pytest.fixture
def prev_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(FIXTURE, home / "harness.db")
    return home


def test_migrations_are_an_ordered_registry():
    assert SCHEMA_VERSION == 4 and sorted(MIGRATIONS) == list(range(2, SCHEMA_VERSION + 1))
    assert callable(MIGRATIONS[4])  # rows change (pair identity, issue 34): a function, not DDL


def test_store_of_previous_main_migrates_and_reads_back(prev_home):
    with sqlite3.connect(prev_home / "harness.db") as db:  # what the old code left
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "2"
    store = Store(prev_home)
    assert store.meta("schema_version") == str(SCHEMA_VERSION) and store.meta("migrated_from") == "2"
    assert store.meta("note") == "written by 132c6f7"
    indexes = {r["name"] for r in store.query("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"labels_annotator_pair", "pairs_source", "results_run"} <= indexes  # migration 3
    assert store.counts() == {"runs": 2, "pairs": 5, "labels": 17, "samples": 2, "results": 1, "metrics": 5}
    # migration 4 (tests/test_pair_identity.py) ran and found no pair stored in both orders here
    assert json.loads(store.meta("migration_4")) == {"pairs_merged": 0, "labels_moved": 0, "items_renamed": 0,
                                                     "labels_updated": 0}

    runs = {r["name"]: r for r in store.list_runs()}
    a, b = runs["prev-a"], runs["prev-b"]
    assert (a["algo"], a["task"], a["status"], a["note"], a["config"]) == ("dpo", "tldr", "done", "finished",
                                                                           {"lr": 1e-5, "beta": 0.1})
    assert (b["algo"], b["task"], b["status"], b["note"], b["config"]) == ("oaif", "hh", "failed", "oom", {"lr": 2e-5})
    assert a["last_step"] == 20
    m = store.metrics([a["run_id"]])
    assert m["step"].tolist() == [0, 10, 20] and m["loss"].tolist() == pytest.approx([1.0, 1 / 11, 1 / 21])
    assert m["reward"].tolist() == pytest.approx([0.0, 5.0, 10.0])
    ev = store.metrics([a["run_id"]], split="eval")
    assert ev["win_rate"].tolist() == [0.6]
    assert store.metrics([b["run_id"]])["loss"].tolist() == [0.7]

    pairs = store.pairs_df()
    ds = pairs[pairs["dataset"] == "pandalm"].sort_values("record_id")
    assert ds["prompt"].tolist() == ["prompt 0", "prompt 1", "prompt 2"] and set(ds["subset"]) == {"test"}
    assert ds["source"].tolist() == ["dataset:pandalm"] * 3
    rp = pairs[pairs["run_id"] == b["run_id"]].sort_values("prompt")
    assert rp["step"].tolist() == [5, 5] and rp["response_a"].tolist() == ["ra0", "ra1"]
    assert rp["policy_a"].tolist() == ["pol", "pol"] and rp["source"].tolist() == [f"run:{b['run_id']}"] * 2
    # the pair ids the old code computed are today's content hashes of the same pairs
    p0 = Pair(prompt="prompt 0", response_a="a0", response_b="b0", source="dataset:pandalm", dataset="pandalm",
              subset="test", record_id="0")
    assert p0.pair_id in set(ds["pair_id"])

    labels = store.labels_df()
    judge = labels[labels["annotator_id"] == "smollm2-logprob"]
    ds_judge = judge[judge["run_id"].isna()]
    assert sorted(zip(ds_judge["shown_order"], ds_judge["verdict"], ds_judge["p_a"])) == \
        [("AB", "A", 0.75)] * 3 + [("BA", "B", 0.25)] * 3
    first = ds_judge[ds_judge["shown_order"] == "AB"].iloc[0]
    assert (first["raw_output"], first["latency_s"], first["tokens_in"], first["tokens_out"]) == ("A", 0.1, 10, 1)
    run_judge = judge[judge["run_id"] == b["run_id"]]
    assert len(run_judge) == 4 and set(run_judge["step"]) == {5} and sorted(run_judge["cached"]) == [0, 0, 1, 1]
    human = labels[labels["annotator_id"] == "pandalm:annotator1"]
    assert set(human["annotator_kind"]) == {"human"} and set(human["verdict"]) == {"tie"} and len(human) == 3
    sim = labels[labels["annotator_kind"] == "simulated-human"]
    assert len(sim) == 3 and set(sim["p_a"]) == {1.0}
    # cache hits: the old cache keys are today's keys
    j = Annotator("llm", "smollm2-logprob", "v1", {"temp": 0})
    keys = [label_cache_key(j, p0.pair_id, "AB"), label_cache_key(j, p0.pair_id, "BA")]
    hits = store.cached_labels(keys)
    assert set(hits) == set(keys) and {h["verdict"] for h in hits.values()} == {"A", "B"}

    # the rater and their change
    assert [r["rater_id"] for r in R.raters(store)] == ["alice"]
    assert R.authenticate(store, "alice", "password123") is not None
    changes = R.label_changes(store, "alice")
    assert [(c["old_verdict"], c["new_verdict"], c["old_p_a"], c["new_p_a"]) for c in changes] == [("A", "B", 1.0, 0.0)]
    mine = labels[labels["annotator_id"] == "human:alice"]
    assert mine["verdict"].tolist() == ["B"] and mine["p_a"].tolist() == [0.0]

    s = store.samples_df(a["run_id"])
    assert s["prompt"].tolist() == ["p", "p2"] and s["reward"].tolist() == [0.5, -0.5] and set(s["step"]) == {10}
    (res,) = store.results("winrate")
    assert res["result"] == {"win_rate": 0.6, "n": 3} and res["run_id"] == a["run_id"] and res["judge"] == "smollm2"

    # new writes on the migrated store
    run = store.create_run({"lr": 3e-5}, "dpo", name="after")
    store.log_metrics(run, 1, {"loss": 0.5})
    new = Pair(prompt="new", response_a="x", response_b="y", dataset="pandalm")
    assert store.add_labels([Label(new.pair_id, j, "A", "AB", p_a=0.6)], [new]) == 1
    assert store.add_labels([Label(p0.pair_id, j, "A", "AB", p_a=0.75)]) == 0  # an old label dedups
    assert R.change_label(store, int(mine["label_id"].iloc[0]), "alice", "tie") and len(R.label_changes(store)) == 2
    assert store.counts()["labels"] == 18 and store.counts()["runs"] == 3

    again = Store(prev_home)  # a second open migrates nothing
    assert again.meta("schema_version") == str(SCHEMA_VERSION) and again.meta("migrated_from") == "2"
    assert again.counts()["labels"] == 18


def test_store_newer_than_code_is_refused(prev_home):
    with sqlite3.connect(prev_home / "harness.db") as db:
        db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1} is newer than this harness"):
        Store(prev_home)
