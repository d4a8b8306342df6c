"""Annotator controllability on fixed pairs (harness/evaluation/controllability.py), before training.

The positive control rule:instructed must move every distinguishing verdict to the instructed
property (flip_toward 1.0) and the negative control rule:shorter, which takes no instruction, none
(0.0). The estimator arithmetic is checked against counts made by hand on a scripted judge: a test
double with fixed p_a per pair and order, because an LLM's answers cannot be known in advance."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.config import JudgeRef
from harness.evaluation import controllability as C
from harness.records import Annotator, Label, Pair, content_hash
from harness.store import Store

REPO = Path(__file__).resolve().parents[1]
CFG = str(REPO / "configs" / "oaif_quickstart_rule_shorter.yaml")

# each pair tells at least one property apart
PAIRS = [
    Pair(prompt="q1", response_a="one two three four five", response_b="one two"),
    Pair(prompt="q2", response_a="a, b and c", response_b="A B AND C D E"),
    Pair(prompt="q3", response_a="- first\n- second", response_b="first, second, third and fourth"),
    Pair(prompt="q4", response_a="same words here", response_b="SAME WORDS HERE"),
    Pair(prompt="q5", response_a="Short, with a comma", response_b="a longer one without any comma at all"),
]


def load(name, instruction=None):
    from judges import load_judge

    return load_judge(JudgeRef(name=name, instruction=instruction))


def test_instructed_rule_flips_every_verdict_and_uninstructed_none(tmp_path):
    from harness.pipelines.controllability import judge_for_ref

    store = Store(tmp_path / "home")
    props = ["shorter", "longer", "lowercase", "no_commas", "bullets"]
    pos = C.measure(PAIRS, lambda i: load("rule:instructed:longer", i), props, store)
    neg = C.measure(PAIRS, judge_for_ref(JudgeRef(name="rule:shorter"), store.home, None), props, store)
    assert [r["property"] for r in pos] == props
    for r in pos:
        assert r["instruction_delivered"] and r["n"] == r["n_distinguishing"] > 0
        assert r["instructed_favoured"]["value"] == 1.0
        assert r["flip_away"]["count"] == 0
        if r["flip_toward"]["n"]:  # the base rule (longer) already favoured it everywhere: n = 0, value None
            assert r["flip_toward"]["value"] == 1.0
        else:
            assert r["flip_toward"]["value"] is None
    # longer-base vs "shorter": every distinguishing pair flips (the base always picked the longer one);
    # q4's two responses have the same number of words: not distinguishing
    short = pos[0]
    assert short["flip_toward"]["count"] == short["flip_toward"]["n"] == short["n"] == 4
    assert short["net_shift"]["value"] == 1.0
    for r in neg:
        assert not r["instruction_delivered"] and r["instructed_annotator"] == "rule:shorter"
        assert r["flip_toward"]["count"] == 0 and r["flip_away"]["count"] == 0
        assert r["net_shift"]["value"] == 0.0
        assert r["instructed_favoured"]["count"] == r["baseline_favoured"]["count"]
    # neg control: rule:shorter already favours "shorter" on all 5 distinguishing pairs
    assert neg[0]["baseline_favoured"]["count"] == 4 and neg[0]["flip_toward"]["n"] == 0


class Scripted:
    """A judge whose p_a per (prompt, order) is fixed in advance, per instruction; verdict from p_a."""

    def __init__(self, table, instruction):
        self.table, self.orders, self.tie_band = table, ("AB", "BA"), 0.0
        self.annotator = Annotator(kind="llm", id="scripted" + (f"+{instruction}" if instruction else ""),
                                   version=content_hash("scripted", instruction, n=8))

    def judge(self, pairs, orders):
        out = []
        for p in pairs:
            row = []
            for o in orders:
                pa = self.table[p.prompt][o]
                v = "unparsed" if pa is None else "A" if pa > 0.5 else "B" if pa < 0.5 else "tie"
                row.append(Label(pair_id=p.pair_id, annotator=self.annotator, verdict=v, shown_order=o, p_a=pa))
            out.append(row)
        return out


def test_counts_equal_hand_counts(tmp_path):
    # property "shorter": favoured A in p0, p1, p5; B in p2, p3; p4 equal length (not distinguishing)
    pairs = [Pair(prompt=f"p{i}", response_a=a, response_b=b) for i, (a, b) in enumerate(
        [("x", "x y"), ("x", "x y"), ("x y", "x"), ("x y", "x"), ("x y", "y x"), ("x", "x y")])]
    base = {"p0": {"AB": 0.3, "BA": 0.4}, "p1": {"AB": 0.8, "BA": 0.7}, "p2": {"AB": 0.6, "BA": 0.4},
            "p3": {"AB": 0.2, "BA": 0.3}, "p4": {"AB": 0.7, "BA": 0.6}, "p5": {"AB": 0.6, "BA": 0.6}}
    told = {"p0": {"AB": 0.9, "BA": 0.8}, "p1": {"AB": 0.4, "BA": 0.45}, "p2": {"AB": 0.3, "BA": 0.2},
            "p3": {"AB": 0.1, "BA": 0.25}, "p4": {"AB": 0.2, "BA": 0.3}, "p5": {"AB": 0.7, "BA": None}}
    judge_for = lambda i: Scripted(told if i else base, i)  # noqa: E731
    [r] = C.measure(pairs, judge_for, ["shorter"], Store(tmp_path / "home"))
    # combined (MT-Bench) verdicts: base p0 B, p1 A, p2 tie (A then B), p3 B; told p0 A, p1 B, p2 B, p3 B;
    # p5 told is unparsed in BA: left out
    assert (r["n_pairs"], r["n_distinguishing"], r["n_unparsed"], r["n"]) == (6, 5, 1, 4)
    assert (r["baseline_favoured"]["count"], r["baseline_favoured"]["n"]) == (2, 4)  # p1, p3
    assert (r["instructed_favoured"]["count"], r["instructed_favoured"]["n"]) == (3, 4)  # p0, p2, p3
    assert (r["flip_toward"]["count"], r["flip_toward"]["n"]) == (2, 2)  # p0, p2 of {p0, p2}
    assert (r["flip_away"]["count"], r["flip_away"]["n"]) == (1, 2)  # p1 of {p1, p3}
    assert r["net_shift"]["value"] == pytest.approx(0.25) and r["net_shift"]["n"] == 4
    assert r["net_shift"]["ci_low"] <= 0.25 <= r["net_shift"]["ci_high"]
    # P(favoured) shift per order: AB (0.6 - 0.4 + 0.3 + 0.1) / 4, BA (0.4 - 0.25 + 0.2 + 0.05) / 4
    assert r["p_shift"]["AB"]["value"] == pytest.approx(0.15) and r["p_shift"]["AB"]["n"] == 4
    assert r["p_shift"]["BA"]["value"] == pytest.approx(0.10)
    # measured again: every label is served from the cache (stored once)
    store = Store(tmp_path / "home")
    n_labels = store.query("SELECT COUNT(*) AS n FROM labels WHERE cached = 0")[0]["n"]
    assert n_labels == 6 * 2 * 2
    C.measure(pairs, judge_for, ["shorter"], store)
    assert store.query("SELECT COUNT(*) AS n FROM labels WHERE cached = 0")[0]["n"] == n_labels


def test_wilson_interval_is_statsmodels(tmp_path):
    from statsmodels.stats.proportion import proportion_confint

    [r] = C.measure(PAIRS, lambda i: load("rule:instructed:shorter", i), ["lowercase"], Store(tmp_path / "h"))
    for key in ("baseline_favoured", "instructed_favoured", "flip_toward"):
        f = r[key]
        lo, hi = proportion_confint(f["count"], f["n"], alpha=0.05, method="wilson")
        assert (f["ci_low"], f["ci_high"]) == pytest.approx((lo, hi))
    # lowercase tells q2, q4 (A) and q5 (B) apart; rule:shorter picked A, tie, A: 1 of 3 favoured
    assert (r["n"], r["baseline_favoured"]["count"], r["flip_toward"]["count"], r["flip_toward"]["n"]) == (3, 1, 2, 2)
    assert (r["flip_away"]["count"], r["flip_away"]["n"]) == (0, 1)


def test_unknown_instruction_is_an_error_naming_the_known_ones():
    with pytest.raises(ValueError, match="names no registered property; known: shorter .*lowercase"):
        load("rule:instructed", "Prefer the funnier response.")
    with pytest.raises(ValueError, match="takes no instruction"):
        load("rule:longer", "shorter")
    with pytest.raises(ValueError, match="unknown property 'funny'"):
        C.measure(PAIRS, lambda i: load("rule:instructed", i), ["funny"], None)
    assert C.resolve("  prefer the SHORTER response. ") == "shorter" and C.resolve("no_commas") == "no_commas"


def test_instruction_changes_the_annotator_version():
    plain, short, short_text, low = (load("rule:instructed:longer"), load("rule:instructed:longer", "shorter"),
                                     load("rule:instructed:longer", "Prefer the shorter response."),
                                     load("rule:instructed:longer", "lowercase"))
    versions = {j.annotator.version for j in (plain, short, low)}
    assert len(versions) == 3
    assert short.annotator.version == short_text.annotator.version  # the same property, however named
    assert short.annotator.id == "rule:instructed:longer+instr-shorter"
    assert short.annotator.config["instruction"] == "Prefer the shorter response."
    # an uninstructed rule keeps its version (its cached labels stay valid)
    assert load("rule:shorter").annotator.version == content_hash("rule", "shorter", "2", n=12)
    # where the property does not tell the pair apart, the base rule decides
    [[lab]] = low.judge([Pair(prompt="q", response_a="one two three", response_b="one two")])
    assert lab.verdict == "A" and "favoured=None" in lab.raw_output


def test_cli_measures_before_training_and_stores_the_result(tmp_path, capsys):
    from harness.cli import main
    from harness.pipelines.controllability import fixed_pairs

    f = tmp_path / "pairs.jsonl"
    f.write_text("".join(json.dumps({"prompt": p.prompt, "response_a": p.response_a, "response_b": p.response_b}) + "\n"
                         for p in PAIRS))
    home = tmp_path / "home"
    assert main(["--home", str(home), "study", "controllability", CFG, "judge.name=rule:instructed:longer",
                 "--instructions", "Prefer the shorter response.", "lowercase", "Be funny.",
                 "--judges", "rule:shorter", "--measure-instructions", "shorter", "bullets",
                 "--pairs", str(f), "--no-train"]) == 0
    out = capsys.readouterr()
    assert "controllability on fixed pairs, before training (n_pairs=5" in out.out
    assert "rule:shorter (no instruction taken)" in out.out and "flip_toward" in out.out and "Wilson" in out.out
    assert "instruction 'Be funny.': no property test for it" in out.err
    [res] = Store(home).results("controllability_fixed")
    rows = res["result"]["rows"]
    assert [(r["annotator"], r["property"]) for r in rows] == [
        ("rule:instructed:longer", "shorter"), ("rule:instructed:longer", "lowercase"),
        ("rule:shorter", "shorter"), ("rule:shorter", "bullets")]
    assert rows[0]["instruction"] == "Prefer the shorter response." and rows[0]["flip_toward"]["value"] == 1.0
    # rule:shorter already picks q3's bulleted (shorter) response: nothing to flip toward, n = 0 -> None
    assert rows[3]["flip_toward"]["value"] is None and rows[3]["flip_toward"]["ci_low"] is None
    assert rows[2]["flip_away"]["count"] == 0 and rows[3]["net_shift"]["value"] == 0.0
    assert not Store(home).results("controllability")
    assert res["result"]["n_pairs"] == 5 and res["result"]["timing"][0]["annotator"] == "rule:instructed:longer"

    # without --pairs: the eval pairs already in the store (here: the ones stored above are not eval pairs)
    store = Store(tmp_path / "h2")
    assert fixed_pairs(store, "quickstart") == ([], "eval pairs of any task in the store")
    store.add_pairs([Pair(prompt=p.prompt, response_a=p.response_a, response_b=p.response_b, source="eval",
                          dataset="quickstart") for p in PAIRS] + [Pair(prompt="x", response_a="s", response_b="s",
                                                                        source="eval", dataset="quickstart")])
    got, source = fixed_pairs(store, "quickstart")
    assert source == "eval pairs of task quickstart in the store" and len(got) == 5  # identical pair dropped
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "q", "response_a": "a"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl: line 1: field 'response_b'"):
        fixed_pairs(store, "quickstart", str(bad))


@pytest.mark.slow
def test_embedded_llm_judge_is_measured_with_p_shift(tmp_path):
    """SmolLM2-135M in logprob mode: a row per instruction, with the per-order P(favoured) shift."""
    from harness.pipelines.controllability import judge_for_ref

    rows = C.measure(PAIRS[:3], judge_for_ref(JudgeRef(name="smollm2-logprob"), tmp_path, None),
                     ["shorter", "lowercase"], Store(tmp_path / "home"))
    assert [r["instructed_annotator"].startswith("smollm2-logprob+instr-") for r in rows] == [True, True]
    assert all(r["instruction_delivered"] for r in rows)
    assert rows[0]["n"] == 3 and set(rows[0]["p_shift"]) == {"AB", "BA"}
