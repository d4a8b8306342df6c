"""The one-line verdict and the LC text every win-rate printer uses (harness/evaluation/verdicts.py)."""
from __future__ import annotations

import math

import numpy as np

from harness.evaluation.verdicts import CI_METHOD, ci_note, lc_text, verdict_line, winrate_row
from harness.evaluation.winrate import win_rate


def test_verdict_reads_the_ci_against_one_half():
    assert verdict_line({"n": 16, "ci_low": 0.34, "ci_high": 0.72}, "the initial policy") == \
        "not distinguishable from the initial policy at n=16 (CI [0.34, 0.72] contains 0.5)"
    assert verdict_line({"n": 64, "ci_low": 0.55, "ci_high": 0.71}, "the initial policy") == \
        "better than the initial policy at n=64 (CI [0.55, 0.71] excludes 0.5)"
    assert verdict_line({"n": 64, "ci_low": 0.20, "ci_high": 0.45}, "oaif") == \
        "worse than oaif at n=64 (CI [0.20, 0.45] excludes 0.5)"
    # a bound exactly at 0.5 does not exclude it
    assert verdict_line({"n": 8, "ci_low": 0.5, "ci_high": 0.9}, "x").startswith("not distinguishable")
    assert verdict_line({"n": 0, "ci_low": math.nan, "ci_high": math.nan, "n_unparsed": 3}, "x") == \
        "no verdict against x: no scored pairs (n=0, 3 unparsed)"
    assert verdict_line({"n": 5, "ci_low": math.nan, "ci_high": math.nan}, "x") == \
        "no verdict against x at n=5: no confidence interval"


def test_verdict_on_a_real_win_rate_small_vs_large_n():
    # the same 9-of-16 share of wins (0.5625): undecided at n=16, decided at 32x the prompts
    small = win_rate(np.r_[np.ones(9), np.zeros(7)], seed=0)
    large = win_rate(np.r_[np.ones(288), np.zeros(224)], seed=0)
    assert verdict_line(small, "the initial policy").startswith("not distinguishable from the initial policy at n=16")
    assert small["ci_low"] < 0.5 < small["ci_high"]
    assert verdict_line(large, "the initial policy").startswith("better than the initial policy at n=512")


def test_lc_text_never_prints_a_bare_point_estimate():
    assert lc_text({"lc_win_rate": 0.62, "lc_ci_low": 0.50, "lc_ci_high": 0.74}) == "0.62 [0.50, 0.74]"
    assert lc_text({"lc_identified": False, "lc_reason": "length differences all one sign",
                    "lc_win_rate": 0.997}) == "not identified (length differences all one sign)"
    assert lc_text({"lc_win_rate": 0.6, "lc_ci_low": math.nan, "lc_ci_high": math.nan}).startswith("not identified")
    assert lc_text({"lc_win_rate": math.nan}) == "not identified (no estimate)"


def test_winrate_row_has_n_wtl_ci_and_verdict():
    res = {"n": 16, "wins": 7, "ties": 3, "losses": 6, "n_identical": 2, "win_rate": 0.53125, "ci_low": 0.34,
           "ci_high": 0.72, "lc_identified": False, "lc_reason": "n=16 below the minimum"}
    row = winrate_row(res, "the initial policy", arm="oaif")
    assert row == {"arm": "oaif", "n": 16, "w/t/l": "7/3/6", "identical": 2, "win_rate": 0.53125,
                   "ci95": "[0.34, 0.72]", "lc_win_rate (ci95)": "not identified (n=16 below the minimum)",
                   "verdict": "not distinguishable from the initial policy at n=16 (CI [0.34, 0.72] contains 0.5)"}
    assert CI_METHOD in ci_note() and CI_METHOD == "95% percentile bootstrap over prompts"
