"""Store: runs, metrics, idempotent labels, atomic checkpoints, and no half-written rows after kill -9."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest
import yaml

from harness.records import Annotator, Label, Pair
from harness.store import SCHEMA_VERSION, Store, StoreError



@pytest.fixture
def store(any_store):
    """Every test of this file runs on SQLite and on PostgreSQL (conftest.any_store)."""
    return any_store

def test_record_dtypes_merges_into_env_json(store, capsys):
    """train.record_dtypes: what `dtype: auto` resolved to, kept beside the versions (Store.add_environment)."""
    import json

    from harness.pipelines.train import record_dtypes

    rid = store.create_run({"algo": "dpo"}, "dpo")
    out = record_dtypes(store, rid, {"model": {"device": "cpu", "dtype": "auto"}, "sampling": {"dtype": "auto"}})
    env = json.loads((store.run_dir(rid) / "env.json").read_text())
    assert "versions" in env and env["dtypes"] == out and env["dtypes"]["model"]["dtype"] == "fp32"
    assert "dtypes: model fp32 on cpu" in capsys.readouterr().err


def test_runs_metrics_and_truncate(store):
    rid = store.create_run({"algo": "dpo", "train": {"steps": 3}}, "dpo", task="hh_harmless", name="x", group="g")
    d = store.run_dir(rid)
    assert yaml.safe_load((d / "config.yaml").read_text())["train"]["steps"] == 3
    assert "versions" in (d / "env.json").read_text()
    assert store.get_run(rid)["status"] == "created"
    for step in (1, 2, 3):
        store.log_metrics(rid, step, {"loss": 1.0 / step})
    store.log_metrics(rid, 3, {"loss": 0.1}, split="eval")
    run = store.get_run(rid)
    assert run["last_step"] == 3 and run["last_metrics"]["loss"] == pytest.approx(1 / 3)
    store.truncate_run_after(rid, 1)  # resume from step 1: later train metrics are redone
    m = store.metrics([rid])
    assert m["step"].tolist() == [1]
    assert store.metrics([rid], split="eval")["loss"].tolist() == [0.1]
    assert [r["run_id"] for r in store.list_runs(group="g")] == [rid]
    with pytest.raises(StoreError, match="no run"):
        store.get_run("nope")


def test_labels_are_idempotent(store):
    pair = Pair(prompt="p", response_a="a", response_b="b", source="test")
    human = Annotator("human", "crowd:1", "v1")
    labels = [Label(pair.pair_id, human, "A", "AB"), Label(pair.pair_id, human, "B", "BA")]
    assert store.add_labels(labels, [pair]) == 2
    assert store.add_labels(labels, [pair]) == 0  # importing twice adds nothing
    assert store.counts()["labels"] == 2 and store.counts()["pairs"] == 1


def test_failed_transaction_leaves_nothing(store):
    pair = Pair(prompt="p", response_a="a", response_b="b")
    with pytest.raises(RuntimeError):
        with store.transaction() as db:
            store.add_pairs([pair], db)
            raise RuntimeError("crash mid-write")
    assert store.counts()["pairs"] == 0


def test_kill9_mid_transaction_leaves_no_row(tmp_path):
    home = tmp_path / "home"
    Store(home)
    code = textwrap.dedent(f"""
        import sys, time
        from harness.store import Store
        from harness.records import Pair
        s = Store({str(home)!r})
        with s.transaction() as db:
            s.add_pairs([Pair(prompt=f"p{{i}}", response_a="a", response_b="b") for i in range(500)], db)
            print("written", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "written"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    store = Store(home)
    assert store.counts()["pairs"] == 0  # the uncommitted rows are gone, the db is intact
    store.add_pairs([Pair(prompt="after", response_a="a", response_b="b")])
    assert store.counts()["pairs"] == 1
    with sqlite3.connect(store.db_path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_checkpoints_are_atomic_and_pruned(store):
    rid = store.create_run({}, "dpo")
    for step in (2, 4, 6):
        with store.writing_checkpoint(rid, step, keep=2) as d:
            (d / "model.safetensors").write_bytes(b"x")
    with pytest.raises(RuntimeError):
        with store.writing_checkpoint(rid, 8, keep=2) as d:
            (d / "model.safetensors").write_bytes(b"half")
            raise RuntimeError("killed while writing")
    latest = store.latest_checkpoint(rid)
    assert latest.name == "step-6" and (latest / "COMPLETE").exists()
    assert sorted(p.name for p in store.checkpoints_dir(rid).glob("step-*")) == ["step-4", "step-6"]
    assert not list(store.checkpoints_dir(rid).glob(".tmp-*"))  # the failed write left nothing behind


def test_schema_version_is_checked(tmp_path):
    store = Store(tmp_path / "h")
    with sqlite3.connect(store.db_path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
        db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError, match="newer"):
        Store(tmp_path / "h")
