"""Annotators vs gold (harness/evaluation/gold_agreement.py, gold_pairs.py, `harness agreement --gold`).

A tiny verifiable task is built in tmp_path (prompts written with harness.verifiable.compose) and
eight hand-made pairs whose gold verdicts and word counts are counted by hand below. No model is
loaded except in the one test marked slow (a tiny random Llama, to exercise sampling and resume).
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from harness.cli import main
from harness.evaluation import gold_pairs as gp
from harness.evaluation.agreement import agreement_table
from harness.evaluation.frames import label_frame
from harness.evaluation.gold_agreement import CEILING, gold_table
from harness.records import Annotator, Label, Pair, prompt_text
from harness.store import Store
from harness.verifiable import compose
from judges.base import BOTH_ORDERS
from judges.gold import make_gold_judge
from judges.simulated import SimulatedConfig, SimulatedRater

PROMPTS = [  # id, base, constraints, topic, reference, group
    ("d1", "Describe a dog.", [{"type": "lowercase"}], ["dog"], "a dog is a loyal pet.", "seen"),
    ("e1", "Explain how to boil an egg.", [{"type": "max_words", "n": 12}], ["egg"],
     "Boil the egg in water for nine minutes.", "seen"),
    ("c1", "Describe a cat.", [{"type": "include_keyword", "word": "whiskers"}], ["cat"],
     "A cat has soft fur and long whiskers.", "unseen"),
]
# (prompt id, response_a, response_b, gold verdict); whitespace word counts in the comments
PAIRS = [
    ("d1", "a dog is a loyal pet.", "A dog is a loyal pet that loves long walks.", "A"),        # 6 vs 10
    ("d1", "The Dog barks at night and guards the house.", "the dog barks.", "B"),             # 9 vs 3
    ("e1", "Boil the egg in water for nine minutes.",
     "Put the egg in a pot of cold water, bring it to a boil and wait about nine minutes.", "A"),  # 8 vs 18
    ("e1", "egg", "Boil the egg for nine minutes.", "B"),                                       # 1 (degenerate) vs 6
    ("c1", "A cat has whiskers and soft fur.", "A cat is a small pet.", "A"),                  # 7 vs 6
    ("c1", "A cat is a pet.", "A cat is a calm pet.", "tie"),                                   # 5 vs 6, both 1.0
    ("d1", "a dog runs fast.", "a dog runs far.", "tie"),                                       # 4 vs 4, both 2.0
    ("c1", "My cat naps all day long.", "The cat licks its whiskers slowly.", "B"),            # 6 vs 6
]
# by hand, on the 6 gold-decided pairs (1-5, 8): rule:shorter says A, B, A, A, B, tie -> right on
# pairs 1, 2, 3 (3 of 6), one tie; rule:longer says B, A, B, B, A, tie -> right on 4, 5 (2 of 6).
# Lengths differ and both decisive: pairs 1-5; gold picks the longer on 4 and 5 (2 of 5).


def make_task(d: Path, name: str = "gtiny") -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "task.yaml").write_text(f"name: {name}\ndescription: tiny verifiable task for tests\n"
                                 "data:\n  prompts: prompts.jsonl\nrubric: Follow every instruction.\n")
    rows = [{"id": i, "base": b, "constraints": c, "topic": t, "prompt": compose(b, c), "reference": r,
             "split": "eval", "group": g} for i, b, c, t, r, g in PROMPTS]
    (d / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def hand_pairs(name: str = "gtiny") -> list[Pair]:
    by_id = {i: (compose(b, c), r) for i, b, c, _, r, _ in PROMPTS}
    return [Pair(prompt=by_id[pid][0], response_a=a, response_b=b, source="test", dataset=f"{name}-eval",
                 reference=by_id[pid][1], meta={"prompt_id": pid}) for pid, a, b, _ in PAIRS]


@pytest.fixture
def task_dir(tmp_path) -> Path:
    return make_task(tmp_path / "gtiny")


class PositionJudge:
    """Test double implementing the judge interface (judges/base.py): it always prefers the response
    shown first, whatever the pair says."""

    orders = BOTH_ORDERS

    def __init__(self):
        self.annotator = Annotator(kind="llm", id="test:first-shown", version="1")

    def judge(self, pairs, orders):
        return [[Label(pair_id=p.pair_id, annotator=self.annotator, verdict="A" if o == "AB" else "B",
                       shown_order=o) for o in orders] for p in pairs]


class BrokenJudge:
    """Test double: a judge whose every call raises (a server that is down)."""

    orders = BOTH_ORDERS

    def __init__(self):
        self.annotator = Annotator(kind="llm", id="test:broken", version="1")
        self.calls = 0

    def judge(self, pairs, orders):
        self.calls += 1
        raise ConnectionError("no server at 127.0.0.1:9")


def raters(task_dir: Path) -> list[SimulatedRater]:
    gold = make_gold_judge(str(task_dir))
    return [SimulatedRater(f"sim-{i}", SimulatedConfig(task=str(task_dir), flip_rate=0.3, position_bias=0.1,
                                                       length_bias=0.1, seed=i), gold) for i in (1, 2, 3)]


def test_gold_verdicts_are_the_hand_counted_ones(task_dir):
    labs = make_gold_judge(str(task_dir)).judge(hand_pairs(), ("AB",))
    assert [l[0].verdict for l in labs] == [v for *_, v in PAIRS]


def test_table_against_hand_counts(task_dir, store):
    broken = BrokenJudge()
    t = gold_table(store, str(task_dir), hand_pairs(), ["gold", "rule:shorter", "rule:longer", PositionJudge(),
                                                        broken, "no-such-judge"], n_boot=200)
    rows = t.set_index("annotator")
    g = rows.loc["gtiny:gold"]
    assert (g["n"], g["accuracy"], g["tie_share"], g["status"]) == (6, 1.0, 0.0, "measured")
    s = rows.loc["rule:shorter"]
    assert (s["n"], s["correct"], s["ties"], s["n_no_ties"]) == (6, 3, 1, 5)
    assert s["accuracy"] == pytest.approx(3 / 6) and s["accuracy_no_ties"] == pytest.approx(3 / 5)
    lo, hi = proportion_confint(3, 6, alpha=0.05, method="wilson")
    assert (s["accuracy_ci_low"], s["accuracy_ci_high"]) == (pytest.approx(lo), pytest.approx(hi))
    lo, hi = proportion_confint(3, 5, alpha=0.05, method="wilson")
    assert (s["accuracy_no_ties_ci_low"], s["accuracy_no_ties_ci_high"]) == (pytest.approx(lo), pytest.approx(hi))
    assert (s["n_longer"], s["p_longer"], s["gold_p_longer"]) == (5, 0.0, pytest.approx(2 / 5))
    lo, hi = proportion_confint(2, 5, alpha=0.05, method="wilson")
    assert (s["gold_p_longer_ci_low"], s["gold_p_longer_ci_high"]) == (pytest.approx(lo), pytest.approx(hi))
    assert s["consistency"] is None or np.isnan(s["consistency"])  # a rule is asked one order: not measured
    ln = rows.loc["rule:longer"]
    assert (ln["correct"], ln["accuracy"], ln["p_longer"], ln["gold_p_longer"]) == (2, pytest.approx(2 / 6), 1.0,
                                                                                    pytest.approx(2 / 5))
    pos = rows.loc["test:first-shown"]
    assert (pos["consistency"], pos["n_both"], pos["p_first"], pos["n_first"]) == (0.0, 8, 1.0, 16)
    lo, hi = proportion_confint(16, 16, alpha=0.05, method="wilson")
    assert pos["p_first_ci_low"] == pytest.approx(lo) and pos["p_first_ci_high"] == pytest.approx(hi)
    # every pair is order-inconsistent, so a tie (MT-Bench rule): never right, all ties
    assert (pos["accuracy"], pos["tie_share"], pos["n_no_ties"]) == (0.0, 1.0, 0)
    for name, why in (("test:broken", "ConnectionError: no server"), ("no-such-judge", "unknown judge")):
        r = rows.loc[name]
        assert r["status"].startswith("not measured: ") and why in r["status"], r["status"]
        assert all(r[c] is None or np.isnan(r[c]) for c in ("n", "accuracy", "consistency", "p_first"))
    assert broken.calls == 1  # its first pair failed: the other seven were never asked
    assert rows.loc[CEILING, "status"].startswith("not measured: needs >= 2 simulated raters")


def test_ceiling_is_the_mean_pairwise_agreement_of_the_raters(task_dir, store):
    rs = raters(task_dir)
    pairs = hand_pairs()
    t = gold_table(store, str(task_dir), pairs, rs, n_boot=500).set_index("annotator")
    from judges.base import label_and_store

    verdicts = {r.annotator.id: {j.pair.pair_id: j.verdict for j in label_and_store(r, pairs, store)} for r in rs}
    decided = [p.pair_id for p, (*_, g) in zip(pairs, PAIRS) if g != "tie"]
    per_pair = [np.mean([verdicts[a][pid] == verdicts[b][pid] for a, b in itertools.combinations(verdicts, 2)])
                for pid in decided]
    c = t.loc[CEILING]
    assert c["status"] == "measured" and c["n"] == len(decided) == 6
    assert c["accuracy"] == pytest.approx(np.mean(per_pair))
    assert c["accuracy_ci_low"] <= c["accuracy"] <= c["accuracy_ci_high"]
    for r in rs:  # each rater's own row: accuracy against gold, hand-counted from its verdicts
        hits = sum(verdicts[r.annotator.id][pid] == g for pid, (*_, g) in zip([p.pair_id for p in pairs], PAIRS)
                   if g != "tie")
        assert t.loc[r.annotator.id, "correct"] == hits and t.loc[r.annotator.id, "kind"] == "simulated-human"


def test_named_simulated_rater_of_another_task_is_not_measured(task_dir, store):
    """sim-rater-1 scores task `verifiable`: on these pairs it says so (or that the task is missing)."""
    row = gold_table(store, str(task_dir), hand_pairs(), ["sim-rater-1"]).set_index("annotator").loc["sim-rater-1"]
    assert row["status"].startswith("not measured: ")
    assert "verifiable" in row["status"]


def test_gold_labels_are_stored_so_reference_gold_reads_them(task_dir, store):
    gold_table(store, str(task_dir), hand_pairs(), ["rule:shorter"], n_boot=50)
    frame = label_frame(store, dataset="gtiny-eval")
    assert set(frame["annotator"]) == {"gtiny:gold", "rule:shorter"}
    row = agreement_table(frame, "gold", n_boot=50).set_index(["annotator", "subset"]).loc[("rule:shorter", "(all)")]
    # every pair (gold ties included) is an item; where neither says tie it is the same 3 of 5
    assert row["n"] == 8 and row["agreement_no_ties"] == pytest.approx(3 / 5)


def test_make_pairs_drops_identical_and_names_dataset_and_subset():
    rows = [{"id": "p1", "prompt": "Q1", "constraints": [{"type": "lowercase"}, {"type": "no_commas"}],
             "group": "seen", "reference": "r"},
            {"id": "p2", "prompt": "Q2", "constraints": [{"type": "max_words", "n": 5}], "reference": None}]
    responses = [["a", "b", "a", "c"], ["x", "y", "z", "w"]]
    pairs, identical = gp.make_pairs("t", "eval", rows, responses, "pol")
    assert identical == 1 and len(pairs) == 6 + 6 - 1
    p = pairs[0]
    assert (p.dataset, p.subset, p.policy_a, p.reference, p.meta["prompt_id"]) == ("t-eval", "seen:lowercase+no_commas",
                                                                                   "pol", "r", "p1")
    assert pairs[-1].subset == "(none):max_words"
    some, _ = gp.make_pairs("t", "eval", rows, responses, "pol", pairs_per_prompt=2, seed=3)
    again, _ = gp.make_pairs("t", "eval", rows, responses, "pol", pairs_per_prompt=2, seed=3)
    assert [x.pair_id for x in some] == [x.pair_id for x in again] and len(some) <= 4


def test_cli_gold_reuses_stored_samples_and_stores_the_result(task_dir, tmp_path, monkeypatch, capsys):
    """The samples are stored beforehand under the id policy_pairs uses: the command must read them
    back, not load a model (load_model is replaced by a function that fails the test)."""
    import harness.models

    from harness.tasks import load_task

    home = tmp_path / "home"
    store = Store(home)
    rows = load_task(str(task_dir)).prompts("eval")
    k = 3
    run_id = gp.sample_run_id("gtiny", "eval", gp.DEFAULT_POLICY, k, gp.MAX_NEW_TOKENS, gp.TEMPERATURE, 0,
                              [prompt_text(r["prompt"]) for r in rows])
    texts = {"d1": ["a dog is a loyal pet.", "A Dog sleeps all day.", "egg"],
             "e1": ["Boil the egg for nine minutes.", "Boil the egg for nine minutes.", "An egg, boiled, is food."],
             "c1": ["A cat has whiskers.", "A cat is a pet.", "My cat sleeps."]}
    store.add_samples(run_id, 0, [{"prompt": r["prompt"], "response": texts[r["id"]][j], "index": i * k + j,
                                   "meta": {"index": i * k + j}} for i, r in enumerate(rows) for j in range(k)])

    def no_model(*a, **kw):
        raise AssertionError("the stored samples should have been reused")

    monkeypatch.setattr(harness.models, "load_model", no_model)
    assert main(["--home", str(home), "agreement", "--gold", str(task_dir), "--samples", "3", "--n-boot", "50",
                 "--annotators", "gold", "rule:shorter", "http-missing"]) == 0
    out = capsys.readouterr().out
    assert "8 pairs of smollm2-135m-instruct samples" in out and "1 identical pairs dropped" in out
    assert "http-missing: not measured: ConfigError" in out
    res = store.results("gold_agreement")[-1]["result"]
    rows_by = {r["annotator"]: r for r in res["rows"]}
    assert rows_by["gtiny:gold"]["accuracy"] == 1.0
    assert res["n_pairs"] == 8 and res["pairs"]["gold_share"]["decided"]["n"] == 8
    assert rows_by["rule:shorter"]["n"] == res["pairs"]["gold_share"]["decided"]["count"]


@pytest.mark.slow
def test_policy_pairs_samples_stores_and_resumes(task_dir, store, embedded_path, tmp_path, monkeypatch):
    """Sampling through the harness sampler with a tiny random Llama (SmolLM2 tokenizer); a second call
    reads the samples back without a model, a longer --limit samples only the new prompt."""
    import harness.models
    from tiny import make_tiny_model

    model = str(make_tiny_model(embedded_path, tmp_path / "tiny"))
    stats: dict = {}
    first = gp.policy_pairs(str(task_dir), "eval", store, model=model, samples_per_prompt=2, max_new_tokens=6,
                            limit=2, progress=False, stats=stats)
    assert len(store.samples_df(stats["sample_run"])) == 4 and len(first) + stats["n_identical"] == 2
    assert {p.dataset for p in first} <= {"gtiny-eval"} and stats["gold_share"]["n_pairs"] == len(first)
    real_load = harness.models.load_model
    monkeypatch.setattr(harness.models, "load_model", lambda *a, **kw: (_ for _ in ()).throw(AssertionError("reload")))
    again = gp.policy_pairs(str(task_dir), "eval", store, model=model, samples_per_prompt=2, max_new_tokens=6,
                            limit=2, progress=False)
    assert [p.pair_id for p in again] == [p.pair_id for p in first]
    calls = []
    monkeypatch.setattr(harness.models, "load_model", lambda *a, **kw: calls.append(1) or real_load(*a, **kw))
    more_stats: dict = {}
    more = gp.policy_pairs(str(task_dir), "eval", store, model=model, samples_per_prompt=2, max_new_tokens=6,
                           limit=3, progress=False, stats=more_stats)
    assert calls == [1] and len(store.samples_df(stats["sample_run"])) == 6
    assert [p.pair_id for p in more][:len(first)] == [p.pair_id for p in first]
