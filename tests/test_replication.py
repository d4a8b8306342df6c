"""The replication cells of `make study` (harness/evaluation/replication.py): the t interval over
seeds against statsmodels' and scipy's own, and the verdict rules at their edges."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.weightstats import DescrStatsW

from harness.evaluation import replication as rep


@pytest.mark.parametrize("values", [[0.1, 0.3, 0.2], [0.55, 0.61, 0.40, 0.70], [-1.0, 2.0, 0.5, 0.25, 3.0]])
def test_t_interval_matches_statsmodels_and_scipy(values):
    got = rep.t_interval(values)
    lo, hi = DescrStatsW(np.asarray(values)).tconfint_mean(alpha=0.05)
    ci = stats.ttest_1samp(values, 0.0).confidence_interval(0.95)
    assert got["mean"] == pytest.approx(np.mean(values)) and got["n"] == len(values)
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((lo, hi), rel=1e-10)
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert got["sd"] == pytest.approx(np.std(values, ddof=1))


def test_t_interval_drops_missing_and_has_no_ci_below_two_values():
    assert rep.t_interval([0.4, None, float("nan")]) == {"mean": 0.4, "ci_low": None, "ci_high": None, "sd": None,
                                                         "n": 1, "method": rep.T_METHOD}
    assert rep.t_interval([])["mean"] is None


@pytest.mark.parametrize("claim,lo,hi,expected", [
    ("> 0", 0.01, 0.2, rep.REPRODUCED), ("> 0", -0.2, -0.01, rep.NOT_REPRODUCED), ("> 0", -0.1, 0.1, rep.NOT_RESOLVED),
    ("> 0", 0.0, 0.1, rep.NOT_RESOLVED),  # a CI touching 0 does not exclude it
    ("< 0", -30.0, -2.0, rep.REPRODUCED), ("< 0", 1.0, 9.0, rep.NOT_REPRODUCED), ("< 0", -3.0, 2.0, rep.NOT_RESOLVED),
    (">= -0.1", -0.05, 0.3, rep.REPRODUCED), (">= -0.1", -0.1, 0.3, rep.REPRODUCED),
    (">= -0.1", -0.4, -0.15, rep.NOT_REPRODUCED), (">= -0.1", -0.3, 0.0, rep.NOT_RESOLVED),
    ("> 0", None, None, rep.NOT_RESOLVED)])
def test_verdict(claim, lo, hi, expected):
    assert rep.verdict(claim, lo, hi) == expected


def test_bad_claim_names_where():
    with pytest.raises(ValueError, match=r"contrasts\[2\].claim: 'bigger' is not a claim"):
        rep.parse_claim("bigger", "contrasts[2].claim")


def test_contrast_is_paired_per_seed():
    per_arm = {"a": {0: {"gold": 1.0}, 1: {"gold": 1.35}, 2: {"gold": 0.8}},
               "b": {0: {"gold": 0.8}, 1: {"gold": 1.1}, 2: {"gold": 0.5}, 3: {"gold": 9.0}}}  # seed 3: b only
    cell = rep.contrast_cell("a vs b", "a", "b", "gold", "> 0", per_arm, unit="gold points")
    assert cell["per_seed"] == pytest.approx({0: 0.2, 1: 0.25, 2: 0.3}) and cell["n"] == 3
    ci = stats.ttest_1samp([0.2, 0.25, 0.3], 0.0).confidence_interval(0.95)
    assert (cell["ci_low"], cell["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert cell["verdict"] == rep.REPRODUCED and cell["claim"] == "a - b > 0"
