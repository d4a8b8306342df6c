"""alpaca_eval's annotator table (issue #34 item 3), each column against alpaca_eval 0.6.6's own
functions (installed by `make setup`) on the same inputs: analyze.Analyzer's agreement_of_annotations,
estimate_variance, estimate_correlations, get_length_biases and get_list_biases,
metrics.helpers._random_mode, utils.contains_list and analyze._get_longest_predictor."""
from __future__ import annotations

import sys
import types

import numpy as np
import pandas as pd
import pytest

from harness.evaluation import alpaca_metrics as am
from harness.evaluation.annotator_table import annotator_table
from harness.evaluation.comparisons import add_features, canonical, contains_list
from harness.evaluation.frames import label_frame
from harness.store import Store
from judges.importers import import_labels

from conftest import SHARED_DATA

VERDICT = {1.0: "A", 2.0: "B", 1.5: "tie"}


@pytest.fixture(scope="module")
def alpaca():
    # alpaca_eval.utils imports pkg_resources at module level (not in this setuptools); nothing used here needs it
    if "pkg_resources" not in sys.modules:
        sys.modules["pkg_resources"] = types.ModuleType("pkg_resources")
    import alpaca_eval.analyze as analyze
    import alpaca_eval.metrics.helpers as helpers
    import alpaca_eval.utils as utils

    return types.SimpleNamespace(analyze=analyze, helpers=helpers, utils=utils)


def analyzer(alpaca, gold: pd.DataFrame, m: int, keys=("item",)):
    return alpaca.analyze.Analyzer(gold_crossannotations=gold.copy(), gold_annotations=gold.copy(), keys=keys, n_annotators=m)


def label_rows(votes, annotator, kind, start=0, order="AB"):
    """votes: [(item, pref)] -> label-frame rows, prefs as alpaca_eval's (1, 2, 1.5)."""
    return [{"label_id": start + i, "item": item, "annotator": annotator, "kind": kind, "verdict": VERDICT[p],
             "shown_order": order, "dataset": "d", "subset": None, "len_a": 10.0, "len_b": 50.0,
             "policy_a": "ref", "policy_b": gen} for i, (item, p, gen) in enumerate(votes)]


def synthetic(seed=0, n_items=60, m=4, repeat=True):
    """Items of 6 generators against one baseline 'ref' (alpaca_eval's layout), m human votes each
    (one item with fewer, left out of the panel), an AI with 1-3 labels per item."""
    rng = np.random.default_rng(seed)
    gens = [f"g{k}" for k in range(6)]
    quality = dict(zip(gens, np.linspace(0.2, 0.8, 6)))
    human, ai = [], []
    for i in range(n_items):
        g = gens[i % 6]
        p_b = quality[g]
        draw = lambda: rng.choice([1.0, 2.0, 1.5], p=[0.85 * (1 - p_b), 0.85 * p_b, 0.15])  # noqa: E731
        for _ in range(m if i else 2):
            human.append((f"i{i}", draw(), g))
        for _ in range(rng.integers(1, 4) if repeat else 1):
            ai.append((f"i{i}", draw(), g))
    return human, ai


def frame_of(human, ai):
    rows = []
    for k, (item, p, g) in enumerate(human):
        rows += label_rows([(item, p, g)], f"h{k % 4}", "human", start=k)
    rows += label_rows(ai, "ai", "llm", start=10_000)
    return pd.DataFrame(rows)


def row(t, annotator, subset="(all)"):
    r = t[(t["annotator"] == annotator) & (t["subset"] == subset)]
    assert len(r) == 1, t
    return r.iloc[0]


def test_random_mode_is_alpaca_evals(alpaca):
    rng = np.random.default_rng(1)
    for _ in range(400):
        v = rng.choice([1.0, 1.5, 2.0, np.nan], size=rng.integers(1, 7), p=[0.35, 0.2, 0.35, 0.1])
        ref = alpaca.helpers._random_mode(pd.Series(v))
        ours = am.random_mode(v)
        assert (np.isnan(ref) and np.isnan(ours)) or ref == ours, v


def test_contains_list_is_alpaca_evals(alpaca, store_texts):
    texts = store_texts + ["1. one\n2. two", "- a", "a) b", " * x", "no list here", "A. Item", "1.5 is a number",
                           "•bullet", "- ", "x\n  b. yes", ""]
    assert [contains_list(t) for t in texts] == [alpaca.utils.contains_list(t) for t in texts]
    assert sum(map(contains_list, store_texts)) > 50  # the real responses exercise both outcomes
    assert sum(not contains_list(t) for t in store_texts) > 50


def test_human_agreement_and_humans_row_match_alpaca_eval(alpaca):
    human, ai = synthetic()
    t = annotator_table(frame_of(human, ai), n_boot=100, baselines=False)
    gold = pd.DataFrame(human, columns=["item", "preference", "generator"])
    a = analyzer(alpaca, gold, 4)
    df_ai = pd.DataFrame(ai, columns=["item", "preference", "generator"])
    ref = a.agreement_of_annotations(df_ai, n_majority_vote_1=1)["score"]
    r = row(t, "ai")
    assert r["n_humans"] == 4 and r["n_items"] == 59  # the item with two votes is not in the panel
    assert r["human_agreement"] == pytest.approx(ref, abs=1e-12)
    assert r["human_agreement_ci_low"] < r["human_agreement"] < r["human_agreement_ci_high"]
    pooled = a.agreement_of_annotations(a.df_gold_crossannotations, n_majority_vote_1=1)["score"]
    h = row(t, "humans")
    assert h["human_agreement"] == pytest.approx(pooled, abs=1e-12)
    assert h["variance"] == pytest.approx(a.estimate_variance("gold_crossannotations"), abs=1e-12)


def test_variance_matches_alpaca_evals_estimate_variance(alpaca):
    human, ai = synthetic(seed=3)
    t = annotator_table(frame_of(human, ai), n_boot=0, baselines=False)
    df_ai = pd.DataFrame(ai, columns=["item", "preference", "generator"]).assign(shown_order="AB")
    gold = pd.DataFrame(human, columns=["item", "preference", "generator"]).assign(shown_order="AB")
    ref = analyzer(alpaca, gold, 4, keys=("item", "shown_order")).estimate_variance(df_ai)
    r = row(t, "ai")
    assert r["variance"] == pytest.approx(ref, abs=1e-12)
    assert r["n_repeated"] == int((df_ai.groupby("item").size() >= 2).sum()) > 10
    once = annotator_table(frame_of(*synthetic(seed=3, repeat=False)), n_boot=0, baselines=False)
    assert np.isnan(row(once, "ai")["variance"]) and row(once, "ai")["n_repeated"] == 0


def test_ranking_fidelity_matches_alpaca_evals_estimate_correlations(alpaca):
    human, ai = synthetic(seed=5, n_items=240)
    t = annotator_table(frame_of(human, ai), n_boot=0, baselines=False)
    gold = pd.DataFrame(human, columns=["item", "preference", "generator"])
    df_ai = pd.DataFrame(ai, columns=["item", "preference", "generator"])
    ref = analyzer(alpaca, gold, 4).estimate_correlations(df_ai, gold)
    r = row(t, "ai")
    assert r["n_policies"] == 6  # 'ref', in every vote, is the baseline, not ranked
    assert r["spearman"] == pytest.approx(ref["spearman"], abs=1e-12)
    assert r["pearson"] == pytest.approx(ref["pearson"], abs=1e-12)
    wr = analyzer(alpaca, gold, 4).scoring_rule
    board = am.leaderboard(df_ai.rename(columns={"preference": "pref", "generator": "policy_b"}).assign(policy_a="ref"))
    for g, d in df_ai.groupby("generator"):
        assert board[g] * 100 == pytest.approx(wr.generalized_win_rate(d["preference"]), abs=1e-9)
    assert np.isnan(am.ranking_fidelity(board.iloc[:2], board.iloc[:2])["spearman"])  # two points: no figure


@pytest.fixture(scope="module")
def pandalm(tmp_path_factory):
    if not SHARED_DATA.exists():
        pytest.skip(f"{SHARED_DATA} missing")
    store = Store(tmp_path_factory.mktemp("pandalm"))
    import_labels(store, "pandalm", SHARED_DATA / "pandalm_testset")
    lab = add_features(label_frame(store), store)
    texts = store.labels_df().drop_duplicates("pair_id")[["pair_id", "response_a", "response_b"]]
    return lab, texts


@pytest.fixture(scope="module")
def store_texts(pandalm):
    _, texts = pandalm
    return list(texts["response_a"]) + list(texts["response_b"])


def test_length_list_biases_and_baselines_on_pandalm_match_alpaca_eval(alpaca, pandalm):
    lab, texts = pandalm
    t = annotator_table(lab, unparsed="drop", n_boot=0)
    c = canonical(lab).merge(texts, on="pair_id")
    flip = c["flipped"].to_numpy()
    # the canonical order turns a label around: its texts too
    c.loc[flip, ["response_a", "response_b"]] = c.loc[flip, ["response_b", "response_a"]].to_numpy()
    c = c.assign(output_1=c["response_a"], output_2=c["response_b"],
                 preference=c["verdict"].map({"A": 1.0, "B": 2.0, "tie": 1.5}))
    gold = c[c["kind"] == "human"]
    a = analyzer(alpaca, gold[["item", "preference", "output_1", "output_2"]], 3)
    for ann in ("pandalm:gpt-3.5-turbo", "pandalm:pandalm-7b"):
        mine = c[(c["annotator"] == ann) & c["preference"].notna()]
        r = row(t, ann)
        assert r["p_longer"] == pytest.approx(a.get_length_biases(mine)["probability_prefer_longer"], abs=1e-12)
        assert r["p_lists"] == pytest.approx(a.get_list_biases(mine)["probability_prefer_list"], abs=1e-12)
        assert r["human_agreement"] == pytest.approx(a.agreement_of_annotations(
            mine[["item", "preference"]], n_majority_vote_1=1)["score"], abs=1e-12)
    longest = alpaca.analyze._get_longest_predictor(gold.drop_duplicates("item"))
    r = row(t, "always longer")
    assert r["human_agreement"] == pytest.approx(a.agreement_of_annotations(
        longest[["item", "preference"]], n_majority_vote_1=1)["score"], abs=1e-12)
    assert r["p_longer"] == 1.0 and row(t, "always shorter")["p_longer"] == 0.0
    assert row(t, "always first")["p_first"] == 1.0
    assert {"always longer", "always shorter", "always first", "humans"} <= set(t["annotator"])


def test_time_cost_and_tokens_per_1000():
    human, ai = synthetic(repeat=False)
    f = frame_of(human, ai)
    is_ai = f["annotator"] == "ai"
    f["latency_s"] = np.where(is_ai, np.arange(len(f)) % 3 * 0.5, np.nan)  # 0, .5, 1 s
    f["cost"] = np.where(is_ai, 0.002, np.nan)
    f["tokens_in"] = np.where(is_ai, 100, np.nan)
    f["tokens_out"] = np.where(is_ai, 20, np.nan)
    t = annotator_table(f, n_boot=0, baselines=True)
    r = row(t, "ai")
    assert r["seconds_per_1000"] == pytest.approx(f.loc[is_ai, "latency_s"].mean() * 1000)
    assert r["cost_per_1000"] == pytest.approx(2.0) and r["tokens_per_1000"] == pytest.approx(120_000)
    assert np.isnan(row(t, "h0")["seconds_per_1000"])
    assert row(t, "always longer")["seconds_per_1000"] == 0.0 and row(t, "always longer")["variance"] == 0.0
