"""Typed filters (harness/store/filters.py) select what the hand-written WHERE clauses did, and no module
outside harness/store/ writes SQL any more (#16 item 3)."""
import ast
from pathlib import Path

import pytest

from harness.records import Annotator, Label, Pair
from harness.store import Store
from harness.store.filters import LabelFilter, PairFilter

ROOT = Path(__file__).resolve().parents[1]
JUDGE = Annotator("llm", "judge", "v1")
OTHER = Annotator("rule", "rule:other", "1")
HUMAN = Annotator("human", "human:ada", "dashboard-v1")
SIM = Annotator("simulated-human", "sim:1", "1")


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path)
    pairs = [Pair(prompt=f"P{i} 50%_off", response_a="a" * i, response_b="b", source="eval" if i % 2 else "test",
                  dataset="d1" if i < 4 else "d2", subset="s1" if i % 3 else None, run_id="r1" if i < 3 else None,
                  step=i if i < 3 else None, policy_a="x", policy_b="y") for i in range(6)]
    labels = []
    for i, p in enumerate(pairs):
        labels.append(Label(p.pair_id, JUDGE, "A" if i % 2 else "B", "AB", run_id="r2" if i == 4 else None,
                            step=7 if i == 4 else None))
        labels.append(Label(p.pair_id, OTHER, "A", "AB", cached=i == 5))
        if i < 3:
            labels.append(Label(p.pair_id, HUMAN, "tie" if i == 0 else "B", "BA"))
        if i == 5:
            labels.append(Label(p.pair_id, SIM, "unparsed", "AB"))
    s.add_labels(labels, pairs)
    return s


def _ids(store, where, params=()):
    return sorted(r["pair_id"] for r in store.query(f"SELECT pair_id FROM pairs WHERE {where}", params))


def _label_ids(store, where, params=()):
    return sorted(r["label_id"] for r in store.query(
        f"SELECT l.label_id FROM labels l JOIN pairs p USING (pair_id) WHERE {where}", params))


def test_pair_filter_selects_what_the_old_where_did(store):
    ids = sorted(store.pairs_df()["pair_id"])
    cases = [
        (PairFilter(), "1=1", []),
        (PairFilter(disagreements_only=True), "pair_id IN (SELECT pair_id FROM labels WHERE verdict!='unparsed'"
         " GROUP BY pair_id HAVING COUNT(DISTINCT verdict) > 1)", []),
        (PairFilter(annotator="human:ada"), "pair_id IN (SELECT pair_id FROM labels WHERE annotator_id=?)", ["human:ada"]),
        (PairFilter(kind="simulated-human"), "pair_id IN (SELECT pair_id FROM labels WHERE annotator_kind=?)",
         ["simulated-human"]),
        (PairFilter(run_id="r2"), "(run_id=? OR pair_id IN (SELECT pair_id FROM labels WHERE run_id=?))", ["r2", "r2"]),
        (PairFilter(run_id="r2", step=7), "(run_id=? OR pair_id IN (SELECT pair_id FROM labels WHERE run_id=?)) AND"
         " (step=? OR pair_id IN (SELECT pair_id FROM labels WHERE step=? AND run_id=?))", ["r2", "r2", 7, 7, "r2"]),
        (PairFilter(dataset="d1", subset="s1"), "dataset=? AND subset=?", ["d1", "s1"]),
        (PairFilter(search="50%_"), "prompt LIKE ? ESCAPE '\\'", ["%50\\%\\_%"]),
        (PairFilter(search="P1 "), "prompt LIKE ?", ["%P1 %"]),
        (PairFilter(source="eval", dataset="d1"), "source = ? AND dataset = ?", ["eval", "d1"]),  # controllability
        (PairFilter(pair_run_id="r1", pair_step=2), "run_id=? AND step=?", ["r1", 2]),  # judge --run --step
        (PairFilter(pair_ids=ids[:2]), "pair_id IN (?,?)", ids[:2]),
        (PairFilter(pair_ids=[]), "1=0", []),
        # the label page's sources (dashboards.queries.source_where before)
        (PairFilter(not_labelled_by="human:ada", dataset="d1"),
         "pair_id NOT IN (SELECT pair_id FROM labels WHERE annotator_id=?) AND dataset=?", ["human:ada", "d1"]),
        (PairFilter(not_labelled_by="human:ada", ai_disagreements_only=True),
         "pair_id NOT IN (SELECT pair_id FROM labels WHERE annotator_id=?) AND pair_id IN (SELECT pair_id FROM labels"
         " WHERE verdict!='unparsed' AND annotator_kind NOT IN ('human','simulated-human')"
         " GROUP BY pair_id HAVING COUNT(DISTINCT verdict) > 1)", ["human:ada"]),
    ]
    for flt, where, params in cases:
        want = _ids(store, where, params)
        assert sorted(store.pairs_df(flt)["pair_id"]) == want, flt
        assert store.count_pairs(flt) == len(want), flt
        assert store.pair_ids(flt) == want, flt
    assert 0 < store.count_pairs(PairFilter(disagreements_only=True)) < len(ids)
    with pytest.raises(ValueError):
        store.count_pairs(PairFilter(kind="humans"))


def test_label_filter_selects_what_the_old_where_did(store):
    ids = sorted(store.pairs_df()["pair_id"])
    cases = [
        (LabelFilter(), "1=1", []),
        (LabelFilter(annotators=["judge", "human:ada"]), "l.annotator_id IN (?,?)", ["judge", "human:ada"]),
        (LabelFilter(kinds=["human"]), "l.annotator_kind=?", ["human"]),
        (LabelFilter(pair_ids=ids[:3]), "l.pair_id IN (?,?,?)", ids[:3]),
        (LabelFilter(dataset="d2", kinds=["rule"]), "p.dataset=? AND l.annotator_kind=?", ["d2", "rule"]),
        (LabelFilter(run_id="r2", step=7), "l.run_id=? AND l.step=?", ["r2", 7]),
        (LabelFilter(cached=False), "l.cached = 0", []),
        # reward_model.store_examples
        (LabelFilter(annotators=["judge", "rule:other"], verdicts=("A", "B", "tie"), cached=False, dataset="d1"),
         "l.annotator_id IN (?,?) AND l.verdict IN ('A','B','tie') AND l.cached=0 AND p.dataset=?",
         ["judge", "rule:other", "d1"]),
        (LabelFilter(annotators=[]), "l.annotator_id IN ()", []),
    ]
    for flt, where, params in cases:
        assert sorted(store.labels_df(flt)["label_id"]) == _label_ids(store, where, params), flt
    assert sorted(store.label_frame_rows(LabelFilter(cached=False))["label_id"]) == _label_ids(store, "l.cached = 0")


def test_small_lookups(store):
    assert store.datasets() == store.query("SELECT DISTINCT dataset, subset FROM pairs WHERE dataset IS NOT NULL"
                                           " ORDER BY dataset, subset")
    assert store.run_ids() == ["r1", "r2"] and store.steps("r1") == [0, 1, 2] and store.steps("r2") == [7]
    assert store.sample_run_ids() == []
    assert store.label_count("human:ada") == 3 and len(store.labelled_pair_ids("human:ada")) == 3
    assert store.annotator_label_counts() == {"judge": 6, "rule:other": 6, "human:ada": 3, "sim:1": 1}
    ids = store.pair_ids()
    assert store.count_existing_pairs(ids[:2] + ["nope"]) == 2
    with store.transaction() as db:  # inside the importer's transaction
        assert store.count_existing_pairs(ids, db) == len(ids)
        assert store.annotator_label_counts(db)["judge"] == 6


def test_a_where_string_is_refused(store):
    with pytest.raises(TypeError, match="typed filters"):
        store.pairs_df("1=1")
    with pytest.raises(TypeError, match="typed filters"):
        store.labels_df(PairFilter())


def _code_strings(path: Path) -> list[str]:
    """The string constants of a module's code, docstrings left out."""
    tree = ast.parse(path.read_text())
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docs.add(id(first.value))
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and id(n) not in docs]


def test_no_sql_outside_the_store_package():
    offenders = []
    for top in ("harness", "judges", "dashboards"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if (ROOT / "harness" / "store") in path.parents:
                continue
            for s in _code_strings(path):
                if "SELECT " in s.upper() and (" FROM " in s.upper() or s.upper().lstrip().startswith("SELECT ")):
                    offenders.append(f"{path.relative_to(ROOT)}: {s[:60]!r}")
    assert offenders == []
