"""Issue #12 item 14: kappa / Fleiss' kappa against sklearn and statsmodels on near-constant raters,
Bradley-Terry bootstrap resamples that miss a model, and macro-F1 naming the classes it averages."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.evaluation import bradley_terry, cohen_kappa, fleiss_kappa, macro_prf


def test_cohen_kappa_near_constant_raters_matches_sklearn():
    from sklearn.metrics import cohen_kappa_score

    n = 200_000
    a = np.array(["A"] * n, dtype=object)
    b = a.copy()
    a[10], b[20] = "B", "B"  # p_e = 1 - 1e-5: the old np.isclose(p_e, 1) called this perfect agreement (1.0)
    ours = cohen_kappa(list(a), list(b))
    assert ours == pytest.approx(cohen_kappa_score(a, b), abs=1e-9)
    assert abs(ours) < 1e-4
    assert cohen_kappa(["A"] * 5, ["A"] * 5) == 1.0  # exactly one category: the only degenerate table


def test_fleiss_kappa_near_constant_raters_matches_statsmodels():
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

    counts = np.zeros((150_000, 3))
    counts[:, 0] = 3
    counts[7] = [2, 1, 0]
    counts[9] = [2, 0, 1]
    assert fleiss_kappa(counts) == pytest.approx(sm_fleiss(counts), abs=1e-9)
    assert abs(fleiss_kappa(counts)) < 1e-4
    wiki = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                     [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])
    assert fleiss_kappa(wiki) == pytest.approx(sm_fleiss(wiki), abs=1e-12)
    assert fleiss_kappa(np.array([[3, 0], [3, 0]])) == 1.0


def test_bradley_terry_resample_without_a_model_does_not_give_it_the_start_rating():
    # 'rare' played one battle (and won it): ~37% of resamples leave it out; the old code rated it 1000
    # (the penalty-only start) in those and its CI reached down to 1000.
    rows = [{"model_a": "x", "model_b": "y", "winner": w} for w in "AB" * 30 + "A" * 10]
    rows += [{"model_a": "rare", "model_b": "y", "winner": "A"}]
    r = bradley_terry(pd.DataFrame(rows), n_boot=300, seed=0).set_index("model")
    assert 50 < r.loc["rare", "n_boot_missing"] < 160
    assert r.loc["x", "n_boot_missing"] == 0
    assert r.loc["rare", "ci_low"] > 1200  # an undefeated model: every resample that has it rates it high
    assert r.loc["rare", "ci_low"] <= r.loc["rare", "rating"] <= r.loc["rare", "ci_high"]


def test_macro_f1_names_its_classes_and_pandalm_always_averages_three():
    pred, true = ["A", "A", "B"], ["A", "B", "B"]
    obs = macro_prf(pred, true)
    assert obs["macro_classes"] == "A,B" and obs["macro_f1"] == pytest.approx((2 / 3 + 2 / 3) / 2)
    three = macro_prf(pred, true, classes="pandalm")
    assert three["macro_classes"] == "A,B,tie" and three["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    with pytest.raises(ValueError, match="macro classes"):
        macro_prf(pred, true, classes="nope")
