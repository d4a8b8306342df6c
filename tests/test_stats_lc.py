"""Length-controlled win rate (issue #12 item 7): AlpacaEval 2's GLM, cross-checked against alpaca_eval's own
fit (installed from PyPI with --no-deps) and sklearn's L1 LogisticRegression on the same design, and
'not identified' where the length differences cannot separate length from quality."""
from __future__ import annotations

import sys
import types

import numpy as np
import pandas as pd
import pytest

from harness.evaluation.winrate import (fit_l1_logistic, format_lc, length_controlled_win_rate,
                                        length_controlled_win_rates)


def _data(n=80, seed=0, theta=0.4, phi=1.5):
    rng = np.random.default_rng(seed)
    d = rng.normal(0, 120, n)
    p = 1 / (1 + np.exp(-(theta + phi * np.tanh(d / d.std(ddof=1)))))
    s = (rng.random(n) < p).astype(float)
    s[:5] = 0.5  # a few ties (fractional targets)
    return s, 300 + d, np.full(n, 300.0)


def _alpaca_design(s, lp, lb):
    # alpaca_eval: std_delta_len = (len_1 - len_2) / std, output_1 = baseline, output_2 = model
    delta = lb - lp
    return pd.DataFrame({"np.tanh(std_delta_len)": np.tanh(delta / pd.Series(delta).std()),
                         "not_gamed_baseline.astype(float)": 1.0, "preference": s})


def test_lc_matches_alpaca_evals_own_fit(monkeypatch):
    # alpaca_eval.utils imports pkg_resources at module level (not in this setuptools); the fit never
    # uses it: a stand-in for this test only
    if "pkg_resources" not in sys.modules:
        monkeypatch.setitem(sys.modules, "pkg_resources", types.ModuleType("pkg_resources"))
    import alpaca_eval.metrics.glm_winrate as glm  # installed by make setup (Makefile), never skipped
    s, lp, lb = _data()
    df = _alpaca_design(s, lp, lb)
    model = glm.fit_LogisticRegressionCV(df, "preference", is_ytrue_proba=True, n_splits=0, C=100)
    w = dict(zip(df.columns.drop("preference"), model.coef_[0]))
    ref_lc = float(1 / (1 + np.exp(-w["not_gamed_baseline.astype(float)"])))
    ours = length_controlled_win_rate(s, lp, lb, n_boot=0)
    assert ours["identified"]
    assert ours["lc_win_rate"] == pytest.approx(ref_lc, abs=2e-3)
    assert ours["length_coef"] == pytest.approx(-w["np.tanh(std_delta_len)"], abs=2e-2)  # d has the other sign


def test_l1_fit_matches_sklearn_on_alpaca_evals_duplicated_rows():
    from sklearn.linear_model import LogisticRegression

    s, lp, lb = _data(n=120, seed=3)
    d = lp - lb
    X = np.stack([np.ones_like(d), np.tanh(d / d.std(ddof=1))], axis=1)
    for C in (100.0, 0.05):  # weak and strong penalty (the strong one sets the length coefficient to 0)
        ours = fit_l1_logistic(X[None], s[None], C=C)[0]
        sk = LogisticRegression(penalty="l1", C=C, solver="liblinear", fit_intercept=False, tol=1e-10, max_iter=10000)
        sk.fit(np.vstack([X, X]), np.r_[np.ones(len(s)), np.zeros(len(s))], sample_weight=np.r_[s, 1 - s])
        assert ours == pytest.approx(sk.coef_[0], abs=1e-4)


def test_lc_one_signed_lengths_is_not_identified():
    # the case: raw 0.19 but LC 0.997 because every length difference had one sign
    s, lp, lb = _data(n=40, seed=1)
    lp = lb + np.abs(lp - lb) + 1
    r = length_controlled_win_rate(s, lp, lb, n_boot=50)
    assert r["identified"] is False and "one sign" in r["reason"]
    assert np.isnan(r["lc_win_rate"]) and np.isnan(r["ci_low"])
    assert format_lc(r).startswith("not identified (length differences all one sign")
    small = length_controlled_win_rate([1, 0, 1], [10, 20, 30], [20, 10, 20], n_boot=0)
    assert small["identified"] is False and "n=3" in small["reason"]
    const = length_controlled_win_rate([1.0] * 12, list(range(12)), [5.5] * 12, n_boot=0)
    assert const["identified"] is False and "no variance in the scores" in const["reason"]
    flat = length_controlled_win_rate([1.0, 0.0] * 6, [10] * 12, [10] * 12, n_boot=0)
    assert flat["identified"] is False and "no length variance" in flat["reason"]


def test_lc_has_a_bootstrap_ci_that_skips_unidentified_resamples():
    s, lp, lb = _data(n=30, seed=2)
    lp[:29] = lb[:29] + np.abs(lp[:29] - lb[:29]) + 1  # only one pair where the policy is shorter
    lp[29] = lb[29] - 50
    r = length_controlled_win_rate(s, lp, lb, n_boot=200)
    assert r["identified"]
    assert r["n_boot_skipped"] > 0 and r["n_boot"] + r["n_boot_skipped"] == 200  # ~37% lose the one pair
    assert r["ci_low"] <= r["lc_win_rate"] <= r["ci_high"]
    assert "[" in format_lc(r)


def test_lc_removes_a_pure_length_preference():
    # policy longer on 30 pairs (wins 70%), shorter on 10 (wins 30%): symmetric in tanh -> theta ~ 0, LC ~ 0.5
    scores = [1] * 21 + [0] * 9 + [1] * 3 + [0] * 7
    lp, lb = [200] * 30 + [100] * 10, [100] * 30 + [200] * 10
    r = length_controlled_win_rate(scores, lp, lb, n_boot=0, C=1e9)
    assert r["lc_win_rate"] == pytest.approx(0.5, abs=1e-4)


def test_lc_with_instruction_difficulty_for_several_policies():
    rng = np.random.default_rng(5)
    n_x = 60
    g = rng.normal(0, 1.5, n_x)  # some instructions are hard for every policy
    rows = []
    for m, theta in (("p1", 0.8), ("p2", -0.3), ("p3", 0.2)):
        d = rng.normal(0, 100, n_x)
        p = 1 / (1 + np.exp(-(theta + 1.0 * np.tanh(d / d.std(ddof=1)) - g)))
        for x in range(n_x):
            rows.append({"model": m, "instruction": f"x{x}", "score": float(rng.random() < p[x]),
                         "len_model": 300 + d[x], "len_baseline": 300.0})
    t = length_controlled_win_rates(pd.DataFrame(rows), n_boot=20).set_index("model")
    assert t["uses_difficulty"].all() and t["identified"].all()
    assert (t["difficulty_coef"] > 0.3).all()  # the difficulty term carries signal for every policy
    assert t.loc["p1", "lc_win_rate"] > t.loc["p3", "lc_win_rate"] > t.loc["p2", "lc_win_rate"]
    assert ((t["ci_low"] <= t["lc_win_rate"]) & (t["lc_win_rate"] <= t["ci_high"])).all()
    one = length_controlled_win_rates(pd.DataFrame(rows).query("model == 'p1'"), n_boot=0)
    assert not one["uses_difficulty"].iloc[0] and np.isnan(one["difficulty_coef"].iloc[0])
