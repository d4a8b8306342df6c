"""Each statistic of harness.evaluation against values worked out by hand on tiny tables."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from harness.evaluation import (agreement_table, bias_table, bradley_terry, cohen_kappa, fleiss_kappa,
                                human_loo_agreement, human_reliability, krippendorff_alpha_nominal,
                                length_controlled_win_rate, macro_prf, pairwise_kappa, per_item_verdicts,
                                predicted_win_rates, preference_scores, win_rate, win_rate_matrix)
from harness.evaluation.bootstrap import bootstrap_mean_ci


def logit(p):
    return math.log(p / (1 - p))


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


# -- win rate -------------------------------------------------------------------------------------

def test_win_rate_ties_count_half_and_unparsed_are_left_out():
    s = preference_scores(verdicts=["A", "A", "B", "tie", "unparsed"], policy_is="A")
    r = win_rate(s, n_boot=500, seed=1)
    # (1 + 1 + 0 + 0.5) / 4
    assert r["win_rate"] == pytest.approx(0.625)
    assert (r["n"], r["wins"], r["ties"], r["losses"], r["n_unparsed"]) == (4, 2, 1, 1, 1)
    assert 0 <= r["ci_low"] <= 0.625 <= r["ci_high"] <= 1
    # the policy wrote B: every score flips
    flipped = win_rate(preference_scores(verdicts=["A", "A", "B", "tie"], policy_is="B"), n_boot=0)
    assert flipped["win_rate"] == pytest.approx(0.375)
    # per-pair sides
    mixed = preference_scores(verdicts=["A", "A"], policy_is=["A", "B"])
    assert mixed.tolist() == [1.0, 0.0]


def test_win_rate_soft_scores_and_bad_input():
    r = win_rate(preference_scores(p_a=[0.9, 0.6, 0.2, None]), n_boot=0)
    assert r["win_rate"] == pytest.approx((0.9 + 0.6 + 0.2) / 3)
    assert (r["wins"], r["losses"], r["n_unparsed"]) == (2, 1, 1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        win_rate([1.5])
    with pytest.raises(ValueError, match="policy_is"):
        preference_scores(verdicts=["A"], policy_is="C")


def test_bootstrap_ci_is_deterministic_and_narrows_with_n():
    small = bootstrap_mean_ci([1, 0] * 10, n_boot=400, seed=3)
    assert small == bootstrap_mean_ci([1, 0] * 10, n_boot=400, seed=3)
    large = bootstrap_mean_ci([1, 0] * 500, n_boot=400, seed=3)
    assert large[1] - large[0] < small[1] - small[0]
    assert large[0] < 0.5 < large[1]


def test_length_controlled_win_rate_removes_a_pure_length_preference():
    # 30 pairs where the policy is longer (d=+100): it wins 21 (70%); 10 where it is shorter: wins 3 (30%).
    # Two groups, two parameters: the fit is exact, sigmoid(b0 +- b1 x) = 0.7 / 0.3 -> b0 = 0 -> LC = 0.5.
    scores = [1] * 21 + [0] * 9 + [1] * 3 + [0] * 7
    lp = [200] * 30 + [100] * 10
    lb = [100] * 30 + [200] * 10
    raw = win_rate(scores, n_boot=0)["win_rate"]
    assert raw == pytest.approx(24 / 40)
    lc = length_controlled_win_rate(scores, lp, lb, n_boot=100, C=1e9)  # C=1e9: practically no L1 penalty
    assert lc["lc_win_rate"] == pytest.approx(0.5, abs=1e-6)
    sd = np.std(np.array(lp) - np.array(lb), ddof=1)  # alpaca_eval: pandas std
    assert lc["length_coef"] * math.tanh(100 / sd) == pytest.approx(logit(0.7), abs=1e-6)
    assert lc["ci_low"] <= 0.5 <= lc["ci_high"]
    # unequal groups: 0.8 when longer, 0.4 when shorter -> b0 = (logit .8 + logit .4) / 2
    scores2 = [1] * 24 + [0] * 6 + [1] * 4 + [0] * 6
    lc2 = length_controlled_win_rate(scores2, lp, lb, n_boot=0, C=1e9)
    assert lc2["lc_win_rate"] == pytest.approx(sigmoid((logit(0.8) + logit(0.4)) / 2), abs=1e-6)


def test_length_controlled_without_length_differences_is_not_identified():
    # no length variation: length and quality cannot be told apart, so no number (was: the raw 0.75)
    scores = [1, 1, 1, 0] * 3
    lc = length_controlled_win_rate(scores, [10] * 12, [10] * 12, n_boot=0)
    assert lc["identified"] is False and "no length variance" in lc["reason"] and math.isnan(lc["lc_win_rate"])


# -- Bradley-Terry ---------------------------------------------------------------------------------

def test_bradley_terry_two_models_matches_closed_form():
    # A beats B 3 times out of 4 -> P = 0.75 -> R_A - R_B = 400 log10(3); mean rating 1000.
    battles = pd.DataFrame({"model_a": ["A", "A", "B", "B"], "model_b": ["B", "B", "A", "A"],
                            "winner": ["A", "A", "B", "A"]})
    r = bradley_terry(battles, n_boot=0, l2=1e-9).set_index("model")
    gap = 400 * math.log10(3)
    assert r.loc["A", "rating"] == pytest.approx(1000 + gap / 2, abs=1e-3)
    assert r.loc["B", "rating"] == pytest.approx(1000 - gap / 2, abs=1e-3)
    assert (r.loc["A", "wins"], r.loc["A", "losses"], r.loc["A", "n_battles"]) == (3, 1, 4)
    # two wins and two ties is the same likelihood as three wins of four
    ties = pd.DataFrame({"model_a": ["A"] * 4, "model_b": ["B"] * 4, "winner": ["A", "A", "tie", "tie"]})
    rt = bradley_terry(ties, n_boot=0, l2=1e-9).set_index("model")
    assert rt.loc["A", "rating"] - rt.loc["B", "rating"] == pytest.approx(gap, abs=1e-3)
    # predicted win probability back from the ratings
    assert predicted_win_rates(r.reset_index()).loc["A", "B"] == pytest.approx(0.75, abs=1e-6)


def test_bradley_terry_ranks_ci_and_anchor():
    rng = np.random.default_rng(0)
    strength = {"strong": 1.0, "mid": 0.0, "weak": -1.0}
    rows = []
    for _ in range(600):
        a, b = rng.choice(list(strength), 2, replace=False)
        p = 1 / (1 + math.exp(-(strength[a] - strength[b])))
        rows.append({"model_a": a, "model_b": b, "winner": "A" if rng.random() < p else "B"})
    battles = pd.DataFrame(rows + [{"model_a": "mid", "model_b": "mid", "winner": "A"},  # self-battle: dropped
                                   {"model_a": "mid", "model_b": "weak", "winner": "unparsed"}])  # dropped
    r = bradley_terry(battles, n_boot=200, seed=0)
    assert r["model"].tolist() == ["strong", "mid", "weak"]
    assert r["rank"].tolist() == [1, 2, 3]
    assert r["n_battles"].sum() == 2 * 600
    assert r["rating"].mean() == pytest.approx(1000, abs=1e-6)
    assert ((r["ci_low"] <= r["rating"]) & (r["rating"] <= r["ci_high"])).all()
    # logistic slope 1 per unit strength = 400/ln10 ~ 174 rating points; loose check
    assert 250 < r["rating"].iloc[0] - r["rating"].iloc[2] < 450
    anchored = bradley_terry(battles, n_boot=50, anchor=("mid", 1200)).set_index("model")
    assert anchored.loc["mid", "rating"] == pytest.approx(1200)
    assert anchored.loc["mid", "ci_low"] <= 1200 <= anchored.loc["mid", "ci_high"]
    with pytest.raises(ValueError, match="anchor"):
        bradley_terry(battles, n_boot=0, anchor=("nobody", 1000))


def test_win_rate_matrix_by_hand():
    battles = pd.DataFrame({"model_a": ["x", "y", "x", "x"], "model_b": ["y", "x", "y", "z"],
                            "winner": ["A", "A", "tie", "B"]})
    m = win_rate_matrix(battles)
    # x vs y: win, loss (y won as A), tie -> (1 + 0 + 0.5) / 3
    assert m.loc["x", "y"] == pytest.approx(0.5)
    assert m.loc["y", "x"] == pytest.approx(0.5)
    assert m.loc["x", "z"] == pytest.approx(0.0)
    assert m.loc["z", "x"] == pytest.approx(1.0)
    assert np.isnan(m.loc["y", "z"])


# -- chance-corrected agreement --------------------------------------------------------------------

def test_cohen_kappa_by_hand():
    # confusion [[20, 5], [10, 15]]: p_o = 0.7, p_e = (25*30 + 25*20) / 50^2 = 0.5 -> kappa 0.4
    a = ["A"] * 25 + ["B"] * 25
    b = ["A"] * 20 + ["B"] * 5 + ["A"] * 10 + ["B"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(["A", "A"], ["A", "A"]) == 1.0
    assert cohen_kappa(["A", "B"], ["B", "A"]) == pytest.approx(-1.0)


def test_fleiss_kappa_by_hand_and_wikipedia_example():
    # 3 items, 2 raters: P_i = 1, 1, 0 -> P_bar = 2/3; p = (1/2, 1/2) -> P_e = 1/2 -> kappa = 1/3
    assert fleiss_kappa(np.array([[2, 0], [0, 2], [1, 1]])) == pytest.approx(1 / 3)
    # the 10 subjects x 14 raters example of Fleiss' kappa (Wikipedia): 0.210
    wiki = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                     [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])
    assert fleiss_kappa(wiki) == pytest.approx(0.210, abs=5e-4)
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa(np.array([[2, 0], [1, 2]]))


def test_krippendorff_alpha_by_hand():
    # units (A,A), (B,B), (A,B): o_AA = 2, o_BB = 2, o_AB = o_BA = 1; n_A = n_B = 3, n = 6
    # alpha = 1 - (n - 1) * 2 / (3*3 + 3*3) = 1 - 10/18
    assert krippendorff_alpha_nominal([["A", "A"], ["B", "B"], ["A", "B"], ["A"]]) == pytest.approx(1 - 10 / 18)
    assert krippendorff_alpha_nominal([["A", "A", "A"], ["B", "B"]]) == 1.0


def test_macro_prf_by_hand():
    pred = ["A", "A", "B", "tie"]
    true = ["A", "B", "B", "B"]
    # A: P 1/2 R 1 F 2/3; B: P 1 R 1/3 F 1/2; tie: P 0 R 0 F 0
    out = macro_prf(pred, true)
    assert out["macro_precision"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert out["macro_recall"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert out["macro_f1"] == pytest.approx((2 / 3 + 0.5 + 0) / 3)


# -- agreement tables --------------------------------------------------------------------------------

def _labels(rows):
    cols = ["item", "annotator", "kind", "verdict", "shown_order", "len_a", "len_b"]
    return pd.DataFrame([dict(zip(cols, r)) for r in rows]).assign(dataset="toy", subset="s1")


@pytest.fixture
def two_order_table():
    """Gold A, A, B, B; judge X always prefers the response shown first, except on i2 (BA)."""
    lens = {"i1": (100, 10), "i2": (10, 100), "i3": (50, 45), "i4": (10, 100)}
    gold = dict(i1="A", i2="A", i3="B", i4="B")
    ab = dict(i1="A", i2="A", i3="A", i4="A")
    ba = dict(i1="B", i2="A", i3="B", i4="B")
    rows = []
    for i in gold:
        rows.append((i, "toy:gold", "human", gold[i], "AB", *lens[i]))
        rows.append((i, "X", "llm", ab[i], "AB", *lens[i]))
        rows.append((i, "X", "llm", ba[i], "BA", *lens[i]))
    return _labels(rows)


def test_agreement_per_order_consistency_and_bias_by_hand(two_order_table):
    t = agreement_table(two_order_table, reference="gold", n_boot=200)
    assert len(t) == 1  # the gold annotator gets no row of its own
    r = t.iloc[0]
    assert (r["annotator"], r["n"], r["n_ab"], r["n_ba"], r["n_both"]) == ("X", 4, 4, 4, 4)
    assert r["acc_ab"] == pytest.approx(2 / 4)          # A, A, A, A vs A, A, B, B
    assert r["acc_ba"] == pytest.approx(3 / 4)          # B, A, B, B vs A, A, B, B
    assert r["acc_avg"] == pytest.approx(5 / 8)
    assert r["acc_both"] == pytest.approx(1 / 4)        # only i2
    assert r["position_consistency"] == pytest.approx(1 / 4)
    assert r["p_first"] == pytest.approx(7 / 8)         # 4 of 4 in AB, 3 of 4 (B) in BA
    # combined verdicts: tie, A, tie, tie -> agreement 1/4; without ties only i2 -> 1
    assert r["agreement"] == pytest.approx(1 / 4)
    assert (r["n_no_ties"], r["agreement_no_ties"]) == (1, 1.0)
    # kappa: p_o = 1/4; p_e = P(X=A) P(ref=A) = 1/4 * 1/2 -> (1/4 - 1/8) / (7/8)
    assert r["kappa"] == pytest.approx((0.25 - 0.125) / 0.875)
    # length: i3 differs by 5 < 30 chars; X picks a side only on i2 (the shorter) -> 0;
    # gold picks i1 A (longer), i2 A (shorter), i4 B (longer) -> 2/3
    assert (r["n_longer"], r["p_longer"]) == (1, 0.0)
    assert r["ref_p_longer"] == pytest.approx(2 / 3)
    assert r["agreement_ci_low"] <= r["agreement"] <= r["agreement_ci_high"]
    # the named-annotator reference gives the same numbers as 'gold' here
    t2 = agreement_table(two_order_table, reference="toy:gold", n_boot=0)
    assert t2.iloc[0]["acc_avg"] == pytest.approx(5 / 8)
    with pytest.raises(ValueError, match="not an annotator"):
        agreement_table(two_order_table, reference="nobody")


def test_bias_table_needs_no_reference(two_order_table):
    b = bias_table(two_order_table, n_boot=0).set_index("annotator")
    assert b.loc["X", "p_first"] == pytest.approx(7 / 8)
    assert b.loc["X", "position_consistency"] == pytest.approx(1 / 4)
    assert b.loc["X", "tie_rate"] == pytest.approx(3 / 4)


def test_combined_verdict_uses_p_when_every_label_has_one():
    df = pd.DataFrame({"item": ["i", "i", "j", "j", "k", "k"], "annotator": "J", "kind": "llm",
                       "verdict": ["A", "B", "A", "B", "A", "A"], "shown_order": ["AB", "BA"] * 3,
                       "p_a": [0.8, 0.4, 0.6, None, 0.9, 0.55]})
    items = per_item_verdicts(df).set_index("item")
    # MT-Bench rule: the verdict flips with the order -> tie, however far the mean p is from .5
    assert items.loc["i", "verdict"] == "tie" and items.loc["i", "value"] == pytest.approx(0.6)
    assert items.loc["k", "verdict"] == "A" and items.loc["k", "value"] == pytest.approx(0.725)
    assert items.loc["j", "verdict"] == "tie"  # one label lacks p: vote (1 + 0) / 2
    assert (items.loc["i", "v_AB"], items.loc["i", "v_BA"]) == ("A", "B")


@pytest.fixture
def panel():
    """3 humans + 1 LLM. i1 humans A,A,B; i2 B,B,B; i3 A,B,tie. LLM: A, A, tie."""
    code = {"A": "A", "B": "B", "t": "tie"}
    v = {"h1": "ABA", "h2": "ABB", "h3": "BBt", "L": "AAt"}
    rows = []
    for ann, verdicts in v.items():
        for item, c in zip(("i1", "i2", "i3"), verdicts):
            rows.append((item, ann, "human" if ann != "L" else "llm", code[c], "AB", 10, 10))
    return _labels(rows)


def test_human_majority_reference_is_leave_one_out_for_humans(panel):
    t = agreement_table(panel, reference="human-majority", n_boot=0).set_index("annotator")
    # LLM vs majority: i1 A (right), i2 B (wrong), i3 no majority -> 1/2 on 2 items
    assert (t.loc["L", "n"], t.loc["L", "agreement"]) == (2, 0.5)
    assert t.loc["L", "reference_used"] == "human majority"
    # h1 on the SAME items as L (i1, i2), against the other two: i1 (A, B) tie -> its A is one of two
    # modes: credit 1/2; i2 (B, B) -> B, h1 says B: 1  -> 3/4 on 2 items (was: only i2, 1.0 on 1 item)
    assert (t.loc["h1", "n"], t.loc["h1", "agreement"]) == (2, 0.75)
    assert t.loc["h1", "reference_used"] == "majority of other humans (LOO)"
    # h3 dissents on both (B vs A,A; B vs B,B -> right on i2) -> 1/2
    assert t.loc["h3", "agreement"] == pytest.approx(0.5)
    assert t.loc["h1", "n_no_ties"] == 2 and t.loc["h1", "agreement_no_ties"] == pytest.approx(0.75)


def test_human_ceiling_fleiss_and_loo_by_hand(panel):
    h = human_reliability(panel, n_boot=100).iloc[0]
    # credits: i1 .5 .5 0; i2 1 1 1; i3 0 0 0 -> 4 / 9
    assert h["ceiling"] == pytest.approx(4 / 9)
    assert (h["n_humans"], h["n_items"], h["raters_fleiss"]) == (3, 3, 3)
    # P_i = 1/3, 1, 0 -> 4/9; p = (3, 5, 1)/9 -> P_e = 35/81 -> kappa = (36 - 35) / (81 - 35)
    assert h["fleiss_kappa"] == pytest.approx(1 / 46)
    loo = human_loo_agreement(panel, n_boot=0).set_index("annotator")
    # LLM: i1 mean(.5, .5, 1) = 2/3; i2 0; i3 mean(.5, .5, 0) = 1/3 -> 1/3
    assert loo.loc["L", "loo_agreement"] == pytest.approx(1 / 3)
    # h1: i1 .5, i2 1, i3 0 -> 1/2
    assert loo.loc["h1", "loo_agreement"] == pytest.approx(0.5)
    pk = pairwise_kappa(panel).set_index(["annotator_1", "annotator_2"])
    assert set(pk.index) == {("h1", "h2"), ("h1", "h3"), ("h2", "h3")}
    assert pk.loc[("h1", "h2"), "agreement"] == pytest.approx(2 / 3)


def test_unparsed_modes(two_order_table):
    df = two_order_table.copy()
    df.loc[(df["annotator"] == "X") & (df["item"] == "i1"), "verdict"] = "unparsed"
    wrong = agreement_table(df, reference="gold", unparsed="wrong", n_boot=0).iloc[0]
    assert wrong["n_unparsed"] == 1 and wrong["n"] == 4
    assert wrong["acc_ab"] == pytest.approx(1 / 4)  # i1's AB answer is now unparsed: wrong
    # unparsed == unparsed counts as consistent (LLMBar's "equal")
    assert wrong["position_consistency"] == pytest.approx(2 / 4)
    tie = agreement_table(df, reference="gold", unparsed="tie", n_boot=0).iloc[0]
    assert tie["n_unparsed"] == 0 and tie["acc_ab"] == pytest.approx(1 / 4)
    drop = agreement_table(df, reference="gold", unparsed="drop", n_boot=0).iloc[0]
    assert drop["n"] == 3 and drop["n_ab"] == 3


def test_subsets_get_an_all_row():
    rows = [("i1", "g:gold", "human", "A", "AB", 1, 1), ("i1", "X", "llm", "A", "AB", 1, 1),
            ("i2", "g:gold", "human", "A", "AB", 1, 1), ("i2", "X", "llm", "B", "AB", 1, 1)]
    df = _labels(rows)
    df.loc[df["item"] == "i2", "subset"] = "s2"
    t = agreement_table(df, reference="gold", n_boot=0).set_index("subset")
    assert t.loc["s1", "agreement"] == 1.0 and t.loc["s2", "agreement"] == 0.0
    assert t.loc["(all)", "agreement"] == 0.5 and t.loc["(all)", "n"] == 2


# -- from the store ----------------------------------------------------------------------------------

def test_leaderboard_command_on_imported_votes(tmp_path, capsys):
    """MT-Bench fixture: gpt-4 beats llama-13b in all three votes on q81 turn 1 (author, expert, GPT-4);
    alpaca-13b beats claude-v1 once and ties once. A judge asked in both orders is one battle."""
    import json

    from harness.cli import main
    from harness.store import Store
    from conftest import REPO

    home = str(tmp_path / "home")
    fixture = str(REPO / "tests" / "fixtures" / "mtbench_human_judgments.jsonl")
    assert main(["--home", home, "import-labels", "--source-format", "mtbench-human", fixture]) == 0
    capsys.readouterr()
    assert main(["--home", home, "--format", "json", "leaderboard", "--n-boot", "20"]) == 0
    lb = json.loads(capsys.readouterr().out)
    assert lb["n_battles"] == 6
    ratings = {r["model"]: r for r in lb["ratings"]}
    assert ratings["gpt-4"]["rating"] > ratings["llama-13b"]["rating"]
    assert ratings["alpaca-13b"]["rating"] > ratings["claude-v1"]["rating"]
    assert (ratings["gpt-4"]["wins"], ratings["gpt-4"]["ties"]) == (3, 1)
    assert lb["win_rate_matrix"]["alpaca-13b"]["claude-v1"] == pytest.approx(0.75)
    assert Store(home).results("leaderboard")[-1]["result"]["n_battles"] == 6
    assert main(["--home", home, "leaderboard", "--judge", "nobody"]) == 2
    assert "no pairwise labels" in capsys.readouterr().err
