"""harness.evaluation.bias: the one position/length-bias implementation, and every report reading it."""
import numpy as np
import pandas as pd
import pytest

from harness.evaluation import bias
from harness.records import Annotator, Judgement, Label, Pair, combine_orders

ANN = Annotator("llm", "hand-made", "1")  # hand-made labels: the statistic is what is tested


def test_first_shown_flags_by_hand():
    f = bias.first_shown(["AB", "BA", "AB", "BA", "AB", None], ["A", "B", "B", "A", "tie", "A"])
    # A shown first in AB; B shown first in BA; ties and unknown orders do not count
    assert np.array_equal(f[:4], [1.0, 1.0, 0.0, 0.0]) and np.isnan(f[4:]).all()
    g = bias.first_shown_by_order(["A", "B", None], ["B", "unparsed", "A"], known=[True, True, False])
    assert np.array_equal(g[:2], [1.0, 0.0]) and np.isnan(g[2]) and g[3] == 1.0 and np.isnan(g[4:]).all()


@pytest.mark.parametrize("policy, expected", [("drop", [1.0, 0.0, np.nan, np.nan, np.nan]),
                                              ("inconsistent", [1.0, 0.0, 0.0, 0.0, np.nan]),
                                              ("equal", [1.0, 0.0, 0.0, 1.0, np.nan])])
def test_consistency_unparsed_policies(policy, expected):
    f = bias.consistent(["A", "A", "unparsed", "unparsed", "A"], ["A", "B", "A", "unparsed", None], policy)
    np.testing.assert_array_equal(f, expected)
    with pytest.raises(ValueError, match="unparsed must be one of"):
        bias.consistent(["A"], ["A"], "ignore")


def test_longer_side_numbers_tuples_and_threshold():
    assert list(bias.longer_side([5, 3, 4], [3, 5, 4])) == ["A", "B", None]
    # (tokens, chars): equal tokens, the characters decide
    assert list(bias.longer_side([(4, 20)], [(4, 25)])) == ["B"]
    assert list(bias.longer_side([100, 100], [80, 60], min_diff=30)) == [None, "A"]
    f = bias.prefers_longer(["A", "B", "tie", "A"], ["A", "A", "A", None])
    assert list(f[:2]) == [1.0, 0.0] and np.isnan(f[2:]).all()


def test_share_matches_the_bootstrap_of_the_kept_flags():
    from harness.evaluation.bootstrap import bootstrap_mean_ci
    from scipy.stats import bootstrap

    rng = np.random.default_rng(0)
    flags = np.where(rng.random(200) < 0.1, np.nan, (rng.random(200) < 0.7).astype(float))
    s = bias.share(flags, n_boot=2000, seed=3)
    kept = flags[~np.isnan(flags)]
    assert s["n"] == kept.size and s["value"] == pytest.approx(kept.mean())
    assert (s["ci_low"], s["ci_high"]) == bootstrap_mean_ci(kept, 2000, 3)
    ref = bootstrap((kept,), np.mean, n_resamples=2000, method="percentile", random_state=3).confidence_interval
    assert s["ci_low"] == pytest.approx(ref.low, abs=0.02) and s["ci_high"] == pytest.approx(ref.high, abs=0.02)
    assert bias.share([np.nan]) == {"value": None, "n": 0, "ci_low": None, "ci_high": None}


def _judgement(a, b, verdicts, orders=("AB", "BA")):
    pair = Pair("q", a, b, policy_a="x", policy_b="y")
    labels = [Label(pair.pair_id, ANN, v, o) for v, o in zip(verdicts, orders)]
    verdict, p_a, consistent = combine_orders(labels)
    return Judgement(pair, verdict, p_a, labels, consistent)


@pytest.fixture()
def judgements():
    return [_judgement("short", "a much longer answer", ["A", "B"]),   # first shown both times: a tie
            _judgement("long long long", "s", ["A", "A"]),            # consistent A, the longer
            _judgement("x", "y y", ["B", "unparsed"]),               # one order unparsed
            _judgement("one two", "three", ["B"], orders=("AB",))]    # asked once


def test_judgement_bias_by_hand(judgements):
    b = bias.judgement_bias(judgements, unparsed="drop")
    # decisive labels: A@AB first, B@BA first, A@AB first, A@BA second, B@AB second, B@AB second
    assert (b["p_first"]["value"], b["p_first"]["n"]) == (pytest.approx(3 / 6), 6)
    assert (b["position_consistency"]["value"], b["position_consistency"]["n"]) == (0.5, 2)
    assert bias.judgement_bias(judgements, unparsed="inconsistent")["position_consistency"]["n"] == 3
    # decisive combined verdicts with different lengths (chars): pair 2 A (longer), pair 4 B (shorter)
    assert (b["p_longer"]["value"], b["p_longer"]["n"]) == (0.5, 2)


def test_every_report_reads_the_same_figures(judgements):
    """oaif's step metrics, `judge`'s summary, the leaderboard's position bias, the validity card
    and the agreement frame give one number for one thing."""
    from harness.algorithms.oaif import judgements_to_examples
    from harness.pipelines.label import summarize
    from harness.pipelines.leaderboard import position_bias
    from harness.evaluation.agreement import bias_table
    from harness.evaluation.validity import figures

    ref = bias.judgement_bias(judgements, unparsed="inconsistent")
    lengths = [(len(j.pair.response_a), len(j.pair.response_b)) for j in judgements]
    _, m = judgements_to_examples(judgements, lengths, [(False, False)] * len(judgements), "skip")
    s = summarize(judgements)
    lb = position_bias(judgements, n_boot=0)
    for p_first in (m["judge/p_first"], s["p_first_shown"], lb["p_first"], figures(judgements)["p_first"]["value"]):
        assert p_first == pytest.approx(ref["p_first"]["value"])
    for cons in (m["judge/consistency"], s["consistency"], lb["position_consistency"]):
        assert cons == pytest.approx(ref["position_consistency"]["value"])
    assert m["judge/prefers_shorter"] == pytest.approx(1 - ref["p_longer"]["value"])
    assert lb["p_longer"] == pytest.approx(ref["p_longer"]["value"])
    dropped = bias.judgement_bias(judgements, length=lambda t: len(t.split()), unparsed="drop")
    card = figures(judgements)
    assert card["position_consistency"]["value"] == dropped["position_consistency"]["value"]
    assert card["p_longer"]["n"] == dropped["p_longer"]["n"]
    # the same labels as a long frame, through the agreement module's per-item path
    rows = [{"dataset": "d", "subset": "s", "item": j.pair.pair_id + str(i), "annotator": "llm", "kind": "llm",
             "verdict": lab.verdict, "shown_order": lab.shown_order, "len_a": len(j.pair.response_a),
             "len_b": len(j.pair.response_b)} for i, j in enumerate(judgements) for lab in j.labels]
    t = bias_table(pd.DataFrame(rows), min_len_diff=0, n_boot=0).iloc[0]
    assert (t["p_first"], t["n_first"]) == (pytest.approx(ref["p_first"]["value"]), ref["p_first"]["n"])
