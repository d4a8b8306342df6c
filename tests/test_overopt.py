"""Reward over-optimisation arithmetic (harness/evaluation/overopt.py): the best-of-n KL formula against
a Monte-Carlo estimate, the exact subset expectation against enumeration and a hand-made example,
proxy rising with n under a planted reward, the CIs against scipy, and the chart."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from harness.evaluation import overopt as oo


def test_bon_kl_formula_values():
    assert oo.bon_kl(1) == 0.0
    assert oo.bon_kl(2) == pytest.approx(math.log(2) - 0.5)
    assert oo.bon_kl(16) == pytest.approx(math.log(16) - 15 / 16)
    with pytest.raises(ValueError, match="n must be >= 1"):
        oo.bon_kl(0)


def test_bon_kl_matches_monte_carlo_on_a_discrete_distribution():
    """Best-of-n from a base distribution over K outcomes with distinct rewards: the plug-in KL of the
    empirical best-of-n distribution to the base is log n - (n-1)/n (up to the O(n/K) discreteness
    gap, where the formula is an upper bound, and Monte-Carlo noise)."""
    rng = np.random.default_rng(0)
    k = 400
    p = rng.dirichlet(np.full(k, 50.0))  # a non-uniform base, every atom small
    reward = rng.permutation(k).astype(float)  # distinct rewards: no ties in the argmax
    draws = 400_000
    for n in (2, 4, 8):
        x = rng.choice(k, size=(draws, n), p=p)
        best = x[np.arange(draws), np.argmax(reward[x], axis=1)]
        q = np.bincount(best, minlength=k) / draws
        mc = float(np.sum(q[q > 0] * np.log(q[q > 0] / p[q > 0])))
        # the exact discrete KL: F(r)^n - F(r-)^n by reward order
        order = np.argsort(reward)
        cdf = np.cumsum(p[order])
        q_exact = np.empty(k)
        q_exact[order] = cdf ** n - np.concatenate([[0.0], cdf[:-1]]) ** n
        exact = float(np.sum(q_exact * np.log(q_exact / p)))
        assert exact <= oo.bon_kl(n) + 1e-9
        assert mc == pytest.approx(oo.bon_kl(n), abs=0.03), n
        assert mc == pytest.approx(exact, abs=0.01), n


def test_bon_subset_expectation_by_hand():
    """N = 3 samples with proxy 0.1, 0.9, 0.5 and gold 2, 0, 1. n = 2: subsets {0,1} -> 1, {0,2} -> 2,
    {1,2} -> 1, so E[proxy] = (0.9 + 0.5 + 0.9) / 3 and E[gold] = (0 + 1 + 0) / 3."""
    out = oo.bon_expected([0.1, 0.9, 0.5], [2.0, 0.0, 1.0], [1, 2, 3])
    assert [r["n"] for r in out] == [1, 2, 3]
    assert out[0]["proxy"] == pytest.approx(0.5) and out[0]["gold"] == pytest.approx(1.0)  # n = 1: the mean
    assert out[1]["proxy"] == pytest.approx(2.3 / 3) and out[1]["gold"] == pytest.approx(1 / 3)
    assert out[2]["proxy"] == pytest.approx(0.9) and out[2]["gold"] == pytest.approx(0.0)  # n = N: the argmax
    assert out[1]["kl"] == pytest.approx(oo.bon_kl(2))
    np.testing.assert_allclose(oo.bon_weights([0.1, 0.9, 0.5], 2), [0.0, 2 / 3, 1 / 3])


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_bon_subset_expectation_equals_enumeration_with_ties(n):
    rng = np.random.default_rng(n)
    proxy = rng.integers(0, 4, size=8).astype(float)  # many ties: the lower index must win, as np.argmax
    gold = rng.normal(size=8)
    words = rng.integers(1, 50, size=8)
    [got] = oo.bon_expected(proxy, gold, [n], extra={"words": words})
    want_p, want_g = oo.bon_brute_force(proxy, gold, n)
    assert got["proxy"] == pytest.approx(want_p) and got["gold"] == pytest.approx(want_g)
    assert oo.bon_weights(proxy, n).sum() == pytest.approx(1.0)
    assert got["words"] == pytest.approx(float(oo.bon_weights(proxy, n) @ words))


def test_pairwise_agreement_by_hand():
    # prompt 1: gold 0 < 1 < 2, proxy orders (0,1) right, (0,2) right, (1,2) wrong; prompt 2: a proxy tie, a gold tie
    got = oo.pairwise_agreement([[0.0, 2.0, 1.0], [0.5, 0.5, 0.1]], [[0.0, 1.0, 2.0], [1.0, 2.0, 2.0]])
    assert got == {"agreement": pytest.approx(2.5 / 5), "pairs": 5}


def test_bon_bad_input_is_refused():
    with pytest.raises(ValueError, match="needs 1 <= n <= 3"):
        oo.bon_expected([1, 2, 3], [1, 2, 3], [4])
    with pytest.raises(ValueError, match="3 proxy scores but 2 gold"):
        oo.bon_expected([1, 2, 3], [1, 2], [1])
    with pytest.raises(ValueError, match="finite"):
        oo.bon_weights([1.0, float("nan")], 1)


def test_proxy_rises_with_n_and_overoptimises_gold_on_a_planted_reward():
    """A planted proxy = gold + a length term the gold scorer punishes past a point: best-of-n's proxy
    rises strictly with n while its gold rises, then falls (Gao et al.'s shape, by construction)."""
    rng = np.random.default_rng(1)
    ns = [1, 2, 4, 8, 16, 32, 64]
    curves = []
    for _ in range(50):  # prompts
        length = rng.uniform(0, 1, size=64)
        gold = 1.0 + length - 10.0 * np.clip(length - 0.85, 0, None)  # best at length 0.85
        proxy = length + 0.05 * rng.normal(size=64)  # the RM learnt "longer is better"
        curves.append(oo.bon_expected(proxy, gold, ns))
    proxy_n = [np.mean([c[j]["proxy"] for c in curves]) for j in range(len(ns))]
    gold_n = [np.mean([c[j]["gold"] for c in curves]) for j in range(len(ns))]
    assert all(b > a for a, b in zip(proxy_n, proxy_n[1:]))
    peak = int(np.argmax(gold_n))
    assert 0 < peak < len(ns) - 1 and gold_n[-1] < gold_n[peak] - 0.1


def _points(seeds, per_prompt_gold):
    return [{"method": "bon", "x": n, "seed": s, "kl": oo.bon_kl(n), "proxy": 0.1 * n + 0.01 * s,
             "gold": float(np.mean(per_prompt_gold[s][j])), "proxy_prompts": [0.1 * n + 0.01 * s] * 4,
             "gold_prompts": per_prompt_gold[s][j]}
            for s in seeds for j, n in enumerate((1, 2, 4))]


def test_curve_ci_is_a_t_interval_over_seeds_or_a_prompt_bootstrap_for_one_seed():
    gold = {s: [[1.0 + 0.1 * s + 0.05 * j * (2 - j) + 0.01 * i for i in range(4)] for j in range(3)] for s in range(3)}
    rows = oo.curve(_points([0, 1, 2], gold))
    assert [(r["method"], r["x"]) for r in rows] == [("bon", 1), ("bon", 2), ("bon", 4)]
    vals = [np.mean(gold[s][1]) for s in range(3)]
    lo, hi = stats.t.interval(0.95, 2, loc=np.mean(vals), scale=stats.sem(vals))
    assert rows[1]["gold"] == pytest.approx(np.mean(vals))
    assert (rows[1]["gold_ci_low"], rows[1]["gold_ci_high"]) == pytest.approx((lo, hi))
    assert rows[1]["kl"] == pytest.approx(oo.bon_kl(2)) and rows[1]["kl_ci_low"] is None
    assert rows[1]["ci_method"] == oo.SEEDS_METHOD
    one = oo.curve(_points([0], gold))
    assert one[0]["ci_method"] == oo.PROMPTS_METHOD
    assert one[0]["gold_ci_low"] <= one[0]["gold"] <= one[0]["gold_ci_high"]
    assert one[0]["gold_ci_low"] >= min(gold[0][0]) and one[0]["gold_ci_high"] <= max(gold[0][0])
    b = oo.bend(rows, _points([0, 1, 2], gold), "bon")
    assert b["peak_x"] == 2 and b["bends"] and b["drop"] == pytest.approx(-0.05)


def test_curve_rl_kl_over_seeds():
    pts = [{"method": "rloo", "x": 2, "seed": s, "kl": k, "proxy": 0.0, "gold": 1.0} for s, k in enumerate((1.0, 2.0, 4.0))]
    [row] = oo.curve(pts)
    lo, hi = stats.t.interval(0.95, 2, loc=np.mean([1, 2, 4]), scale=stats.sem([1, 2, 4]))
    assert row["kl"] == pytest.approx(7 / 3) and (row["kl_ci_low"], row["kl_ci_high"]) == pytest.approx((lo, hi))


def test_overopt_chart_takes_a_dataframe(tmp_path):
    from harness.overopt_plot import bend_sentence, long_frame, overopt_chart
    from harness.plots import PlotError, save_chart

    gold = {s: [[1.0 + 0.1 * s + 0.05 * j * (2 - j) + 0.01 * i for i in range(4)] for j in range(3)] for s in range(2)}
    rows = pd.DataFrame(oo.curve(_points([0, 1], gold)))
    long = long_frame(rows)
    assert set(long["metric"]) == {"proxy", "gold"} and len(long) == 2 * len(rows)
    assert long["sqrt_kl"].tolist()[:3] == pytest.approx([math.sqrt(oo.bon_kl(n)) for n in (1, 2, 4)])
    spec = overopt_chart(rows).to_dict()
    assert len(spec["hconcat"]) == 2 and "area" in str(spec)  # the CI bands
    path = save_chart(overopt_chart(rows), tmp_path / "c.html")
    assert path.stat().st_size > 1000
    with pytest.raises(PlotError, match="lacks column"):
        overopt_chart(pd.DataFrame({"method": ["bon"]}))
    assert "peaks at x=2" in bend_sentence(oo.bend(oo.curve(_points([0, 1], gold)), _points([0, 1], gold), "bon"))


def test_replication_page_shows_the_newest_curve_above_the_study(tmp_path, monkeypatch):
    """The Replication page's over-optimisation block: the stored rows drawn and tabled, with no study."""
    from streamlit.testing.v1 import AppTest

    from harness.store import Store

    store = Store(tmp_path / "home")
    gold = {s: [[1.0 + 0.1 * s + 0.05 * j * (2 - j) + 0.01 * i for i in range(4)] for j in range(3)] for s in range(2)}
    pts = _points([0, 1], gold)
    rows = oo.curve(pts)
    store.add_result("overopt", {"group": "oo-test", "rows": rows, "points": pts, "seeds": [{"seed": 0}, {"seed": 1}],
                                 "bends": {"bon": oo.bend(rows, pts, "bon")}, "ci_method": oo.SEEDS_METHOD},
                     name="oo-test")
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "dashboards" / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("views/replication.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Reward over-optimisation" in m.value for m in at.markdown)
    assert any("peaks at x=2" in c.value for c in at.caption)
    shown = at.dataframe[0].value
    assert shown["gold"].tolist() == pytest.approx([round(r["gold"], 3) for r in rows])
    assert at.get("vega_lite_chart")  # the curve
    assert any("No study" in i.value for i in at.info)  # the study part still says what is missing
