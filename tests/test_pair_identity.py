"""Issue 34 item 1: an imported comparison is one pair and one item whichever order a record lists it in
(the order shown stays true on each label), and a store written by the previous main (commit 4c272ce,
tests/fixtures/store_prev_main_v3, made by its make.py) migrates to the same pairs, labels and
agreement as a fresh import of the same files; re-importing them then adds nothing. Both databases."""
from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from harness.evaluation import agreement_table, label_frame, per_item_verdicts
from harness.records import Annotator, Label, Pair, flip_label
from harness.store import MIGRATIONS, Store, label_cache_key
from harness.store import raters as R
from judges.importers import LabelImportError, import_labels, read_labels

FIX = Path(__file__).parent / "fixtures" / "store_prev_main_v3"
FILES = (("mtbench-human", "human.jsonl"), ("mtbench-human", "gpt4_pair.jsonl"), ("generic", "generic.jsonl"),
         ("pandalm", "pandalm"))
WINNER_MODEL = {"model_a": 0, "model_b": 1}


def conv(model: str, qid: int, turn: int) -> list[dict]:
    out = []
    for t in range(1, turn + 1):
        out += [{"role": "user", "content": f"question {qid}, turn {t}"},
                {"role": "assistant", "content": f"{model}'s answer to {qid}/{t}"}]
    return out


def mtbench_file(path: Path, records) -> Path:
    """MT-Bench human-judgment records (FastChat / lmsys shape) from (qid, turn, model_a, model_b, winner, judge)."""
    path.write_text("".join(json.dumps({"question_id": q, "model_a": a, "model_b": b, "winner": w, "judge": j,
                                        "conversation_a": conv(a, q, t), "conversation_b": conv(b, q, t),
                                        "turn": t}) + "\n" for q, t, a, b, w, j in records))
    return path


def voted_model(label: Label) -> str:
    """The model a label's verdict prefers, read from the label alone (its meta names the policies)."""
    return {"A": label.meta["policy_a"], "B": label.meta["policy_b"]}.get(label.verdict, label.verdict)


HUMAN = [(81, 1, "alpaca", "gpt-4", "model_b", "expert_0"),
         (81, 1, "gpt-4", "alpaca", "model_a", "expert_1"),  # the same comparison, listed the other way round
         (81, 1, "gpt-4", "alpaca", "model_b", "expert_2"),
         (81, 1, "gpt-4", "alpaca", "tie", "author_0"),
         (82, 2, "vicuna", "alpaca", "model_a", "expert_0"),
         (82, 2, "alpaca", "vicuna", "model_b", "expert_1")]
GPT4 = [(81, 1, "gpt-4", "alpaca", "model_a", ["gpt-4", "pair-v2"]),  # a later file, in the swapped order
        (82, 2, "alpaca", "vicuna", "model_a", ["gpt-4", "pair-v2"])]


def test_swapped_mtbench_records_are_one_pair_and_one_item(any_store, tmp_path):
    path = mtbench_file(tmp_path / "human.jsonl", HUMAN)
    pairs, labels = read_labels("mtbench-human", path)
    assert len(pairs) == 2 and len({lab.meta["item"] for lab in labels}) == 2
    assert {lab.meta["item"] for lab in labels} == {"mt_bench_human:81:1:alpaca:gpt-4",
                                                   "mt_bench_human:82:2:alpaca:vicuna"}
    # a vote for a model stays a vote for that model; the record's order is the order shown
    for (q, t, a, b, w, j), lab in zip(HUMAN, labels):
        assert voted_model(lab) == ((a, b)[WINNER_MODEL[w]] if w in WINNER_MODEL else "tie")
        pair = {p.pair_id: p for p in pairs}[lab.pair_id]
        assert lab.shown_order == ("AB" if (pair.policy_a, pair.policy_b) == (a, b) else "BA")
        assert (pair.response_a if lab.shown_order == "AB" else pair.response_b).endswith(f"{a}'s answer to {q}/{t}")
    assert [lab.verdict for lab in labels] == ["B", "B", "A", "tie", "A", "A"]

    rep = import_labels(any_store, "mtbench-human", path)
    assert (rep["pairs"], rep["new_pairs"], rep["items"], rep["labels"]) == (2, 2, 2, 6)
    # GPT-4's file lists both comparisons the other way round from the first record: no new pair, and
    # its verdict falls on the humans' item
    gpt = import_labels(any_store, "mtbench-human", mtbench_file(tmp_path / "gpt4.jsonl", GPT4))
    assert (gpt["pairs"], gpt["new_pairs"], gpt["new_labels"]) == (2, 0, 2)
    assert any_store.counts()["pairs"] == 2
    frame = label_frame(any_store, dataset="mt_bench_human")
    assert frame.groupby("item")["annotator"].nunique().to_dict() == {"mt_bench_human:81:1:alpaca:gpt-4": 5,
                                                                      "mt_bench_human:82:2:alpaca:vicuna": 3}
    table = agreement_table(frame, reference="human-majority", n_boot=0).set_index(["annotator", "subset"])
    row = table.loc[("mtbench-human:gpt-4/pair-v2", "(all)")]
    # 81: humans gpt-4, gpt-4, alpaca, tie -> gpt-4 (GPT-4 agrees); 82: vicuna, vicuna -> vicuna (GPT-4: alpaca)
    assert (row["n"], row["agreement"]) == (2, 0.5)
    again = import_labels(any_store, "mtbench-human", path)
    assert (again["new_pairs"], again["new_labels"]) == (0, 0)


def test_generic_rows_in_the_other_order_flip_verdict_p_a_and_order(tmp_path):
    rows = [{"prompt": "p", "response_a": "x", "response_b": "y", "label": "A", "p_a": 0.9, "annotator": "w1"},
            {"prompt": "p", "response_a": "y", "response_b": "x", "label": "A", "p_a": 0.75, "shown_order": "BA",
             "annotator": "w2", "policy_a": "m-y", "policy_b": "m-x"},
            {"prompt": "q", "response_a": "u", "response_b": "v", "label": "B", "annotator": "w1"}]
    path = tmp_path / "g.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs, labels = read_labels("generic", path)
    first = Pair(prompt="p", response_a="x", response_b="y", source="dataset:generic", dataset="generic")
    assert [p.pair_id for p in pairs] == [first.pair_id, Pair("q", "u", "v").pair_id]  # record order kept
    w2 = labels[1]
    # w2 saw x first (BA of its row = canonical AB) and preferred y: B, P(x better) = 0.25
    assert (w2.pair_id, w2.verdict, w2.p_a, w2.shown_order) == (first.pair_id, "B", 0.25, "AB")
    assert (w2.meta["policy_a"], w2.meta["policy_b"]) == ("m-x", "m-y")
    # the item of a row without record_id is its pair: the pair kept, so both rows are one item
    assert w2.meta["item"] == labels[0].meta["item"] == first.pair_id == w2.meta["dedup"]
    assert flip_label(flip_label(labels[0], "other"), labels[0].pair_id) == labels[0]

    # the same annotator in the same position on both listings: the store would keep one, so it is an error
    rows[1]["annotator"], rows[1]["shown_order"] = "w1", "BA"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(LabelImportError, match=r"g\.jsonl: g\.jsonl:line 2: field 'shown_order': w1 labelled this "
                                               r"comparison in the same position at g\.jsonl:line 1"):
        read_labels("generic", path)


def test_records_that_are_their_own_item_keep_their_pair_and_order():
    """PandaLM's two records with the same texts the other way round: two items, each in its source's
    order (its macro F1 over response1/response2/tie depends on it), so two pairs."""
    pairs, labels = read_labels("pandalm", FIX / "pandalm")
    assert [(p.response_a, p.policy_a) for p in pairs] == [("Hello!", "m1"), ("Hi there, friend.", "m2")]
    assert pairs[0].swapped_id == pairs[1].pair_id
    assert [(lab.meta["item"], lab.verdict, lab.shown_order) for lab in labels] == [
        ("pandalm:0", "A", "AB"), ("pandalm:0", "A", "AB"), ("pandalm:0", "tie", "AB"),
        ("pandalm:1", "A", "AB"), ("pandalm:1", "B", "AB"), ("pandalm:1", "B", "AB")]


# -- a store written by 4c272ce ---------------------------------------------------------------------

def _copy_into_postgres(url: str, home: Path) -> Store:
    """The fixture's rows in a PostgreSQL store recording schema version 3, as 4c272ce left it."""
    fresh = Store(home, url=url)
    src = sqlite3.connect(FIX / "harness.db")
    tables = [r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type='table'"
                                        " AND name NOT LIKE 'sqlite_%'")]
    with fresh.transaction() as db:
        db.execute("DELETE FROM meta")
        for t in tables:
            rows = src.execute(f"SELECT * FROM {t}").fetchall()
            if rows:
                db.executemany(f"INSERT INTO {t} VALUES ({','.join('?' * len(rows[0]))})", rows)
        for t, col in (("labels", "label_id"), ("label_changes", "change_id")):
            db.execute(f"SELECT setval(pg_get_serial_sequence('{t}', '{col}'), (SELECT MAX({col}) FROM {t}))")
    src.close()
    return Store(home, url=url)


@pytest.fixture(params=["sqlite", "postgresql"])
def migrated(request, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    if request.param == "sqlite":
        shutil.copy(FIX / "harness.db", home / "harness.db")
        return Store(home)
    return _copy_into_postgres(request.getfixturevalue("pg_url"), home)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("fresh"))
    for fmt, name in FILES:
        import_labels(store, fmt, FIX / name)
    return store


def _old(sql: str) -> list[dict]:
    with sqlite3.connect(FIX / "harness.db") as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(sql)]


def _preferred(row: dict, pair: dict) -> tuple:
    """What a label says about texts, which no migration may change: the text shown first, the text
    preferred (or the verdict), and P(the text shown first is better)."""
    a, b = pair["response_a"], pair["response_b"]
    first = a if row["shown_order"] == "AB" else b
    pref = {"A": a, "B": b}.get(row["verdict"], row["verdict"])
    p_first = None if row["p_a"] is None else (row["p_a"] if first == a else 1 - row["p_a"])
    return first, pref, None if p_first is None else round(p_first, 12)


def test_fixture_is_what_the_old_code_wrote():
    assert _old("SELECT value FROM meta WHERE key='schema_version'") == [{"value": "3"}]
    assert len(_old("SELECT * FROM pairs")) == 17 and len(_old("SELECT * FROM labels")) == 60
    items = {json.loads(r["meta_json"])["item"] for r in _old("SELECT meta_json FROM labels WHERE annotator_id"
                                                                " LIKE 'mtbench-human:%'")}
    assert len(items) == 8  # the defect: 4 comparisons, each order its own item


def test_store_of_4c272ce_merges_swapped_pairs_and_keeps_every_label(migrated, fresh):
    store = migrated
    assert store.meta("schema_version") == "4" and store.meta("migrated_from") == "3"
    assert store.meta("note") == "written by 4c272ce"
    assert json.loads(store.meta("migration_4"))["pairs_merged"] == 5
    assert store.counts()["pairs"] == 12 and store.counts()["labels"] == 60

    old_pairs = {p["pair_id"]: p for p in _old("SELECT * FROM pairs")}
    new_pairs = {p["pair_id"]: p for p in store.query("SELECT * FROM pairs")}
    old = {r["label_id"]: r for r in _old("SELECT * FROM labels")}
    new = {r["label_id"]: r for r in store.query("SELECT * FROM labels")}
    assert set(old) == set(new)  # every label, under its own id
    for lid, r in old.items():  # each says the same about the same texts
        assert _preferred(new[lid], new_pairs[new[lid]["pair_id"]]) == _preferred(r, old_pairs[r["pair_id"]]), lid
    moved = [lid for lid in old if old[lid]["pair_id"] != new[lid]["pair_id"]]
    assert len(moved) == 23 and all(new[lid]["shown_order"] != old[lid]["shown_order"] for lid in moved)
    assert set(old_pairs) - set(new_pairs) == {old[lid]["pair_id"] for lid in moved}
    # a vote for a model stays a vote for it (the policies in the label meta swap with the verdict)
    for lid in moved:
        m_old, m_new = json.loads(old[lid]["meta_json"]), json.loads(new[lid]["meta_json"])
        if "policy_a" in m_old and old[lid]["verdict"] in ("A", "B"):
            assert m_new["policy_" + new[lid]["verdict"].lower()] == m_old["policy_" + old[lid]["verdict"].lower()]

    # pairs that are not imports stay apart: a run's, and dataset pairs with judge labels only; and two
    # PandaLM records, each its own item, keep their own pairs in their own order
    for prompt in ("run prompt", "bench q", "Say hello."):
        assert len(store.query("SELECT * FROM pairs WHERE prompt=?", (prompt,))) == 2, prompt

    # the rater's label and its change, restated on the pair kept: alice preferred gpt-4's answer,
    # changed it to alpaca's; shown alpaca's first (BA on the pair that listed gpt-4 first)
    (mine,) = [r for r in new.values() if r["annotator_id"] == "human:alice"]
    assert (mine["verdict"], mine["p_a"], mine["shown_order"]) == ("A", 1.0, "AB")
    pair = store.get_pairs([mine["pair_id"]])[0]
    assert (pair.policy_a, pair.policy_b) == ("alpaca-13b", "gpt-4")
    (change,) = R.label_changes(store, "alice")
    assert (change["label_id"], change["old_verdict"], change["new_verdict"]) == (mine["label_id"], "B", "A")
    assert (change["old_p_a"], change["new_p_a"]) == (pytest.approx(0.2), 1.0)

    # the rule judge had asked the same presentation on both pairs: both rows kept, one marked merged
    judge = [r for r in new.values() if r["annotator_id"] == "rule:longer"]
    assert len(judge) == 34 and sum(":merged:" in json.loads(r["meta_json"]).get("dedup", "") for r in judge) == 10
    ann = Annotator("rule", "rule:longer", judge[0]["annotator_version"])
    keys = [label_cache_key(ann, pid, o) for pid in new_pairs for o in ("AB", "BA")]
    assert set(store.cached_labels(keys)) == set(keys)  # every kept pair's answers are cache hits

    # the imported labels are exactly what a fresh import of the same files stores ...
    cols = "pair_id, annotator_id, verdict, p_a, shown_order, cache_key, dedup_key, meta_json"
    sql = (f"SELECT {cols} FROM labels WHERE annotator_id LIKE 'mtbench-human:%' OR annotator_id LIKE 'crowd:%'"
           " OR annotator_id LIKE 'pandalm:%' ORDER BY dedup_key")
    mig_rows, fresh_rows = store.query(sql), fresh.query(sql)
    for r in mig_rows + fresh_rows:
        r["meta_json"] = json.loads(r["meta_json"])
    assert len(mig_rows) == 25 and mig_rows == fresh_rows
    # ... so agreement on the migrated store is agreement on the fresh import
    def stats(s):
        f = label_frame(s, dataset="mt_bench_human")
        f = f[f["annotator"].str.startswith("mtbench-human:")].drop(columns=["label_id"]).reset_index(drop=True)
        return (agreement_table(f, reference="human-majority", n_boot=0),
                per_item_verdicts(f).sort_values(["annotator", "item"]).reset_index(drop=True))
    (t_mig, v_mig), (t_fresh, v_fresh) = stats(store), stats(fresh)
    pd.testing.assert_frame_equal(t_mig, t_fresh)
    pd.testing.assert_frame_equal(v_mig, v_fresh)
    assert v_mig["item"].nunique() == 4 and len(t_mig) > 0

    # re-importing the files after the migration adds nothing
    for fmt, name in FILES:
        rep = import_labels(store, fmt, FIX / name)
        assert (rep["new_pairs"], rep["new_labels"]) == (0, 0), name
    assert store.counts()["labels"] == 60 and store.counts()["pairs"] == 12
    assert Store(store.home, url=None if store.backend.name == "sqlite" else store.backend.url).counts() == \
        store.counts()  # a second open migrates nothing


def test_migration_4_is_a_function_in_the_registry():
    assert callable(MIGRATIONS[4]) and all(isinstance(MIGRATIONS[v], str) for v in (2, 3))
