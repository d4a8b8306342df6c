"""Judge validity cards (harness/evaluation/validity.py) on the real PandaLM and LLMBar files: the
figures against a direct computation from the raw files, Wilson CIs against statsmodels, computed
once per annotator version, missing data skipped, and the `harness train` gate for OAIF."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from statsmodels.stats.proportion import proportion_confint

from harness.config import ConfigError
from harness.evaluation.validity import card_line, card_rows, check_consistency, judge_card, majority, wilson
from harness.records import Annotator, Label
from judges.registry import load_judge

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
PANDALM = SHARED / "pandalm_testset"


class PositionJudge:
    """Always prefers the response shown first. A fake, standing for what the embedded 135M judge was
    measured to do (/work/shared/notes/embedded-model.md: P(first) 0.71-0.86 whatever the content);
    the real one needs minutes of CPU per card. Counts how many pairs it was asked."""

    def __init__(self, version="v1"):
        self.annotator = Annotator("llm", "fake-position", version)
        self.orders = ("AB", "BA")
        self.asked = 0

    def judge(self, pairs, orders):
        self.asked += len(pairs)
        return [[Label(pair_id=p.pair_id, annotator=self.annotator, verdict="A" if o == "AB" else "B", shown_order=o,
                       p_a=0.8 if o == "AB" else 0.2) for o in orders] for p in pairs]


def raw_pandalm() -> dict[str, dict]:
    """item -> record of PandaLM's own file, read here without the harness."""
    return {f"pandalm:{r['idx']}": r for r in json.loads((PANDALM / "testset-v1.json").read_text())}


def test_rule_longer_card_matches_a_direct_computation_on_pandalm(store, shared_data):
    card = judge_card(store, load_judge("rule:longer"), n_pairs=20, datasets={"pandalm": str(PANDALM)})
    raw = raw_pandalm()
    items = card["agreement"]["pandalm"]["items"]
    assert len(items) == 20 and card["skipped"] == {}
    # direct: the human majority from the file's annotator1..3, the longer response by whitespace words
    human = {0: "tie", 1: "A", 2: "B"}
    ref = {i: majority([human[raw[i][f"annotator{k}"]] for k in (1, 2, 3)]) for i in items}
    assert set(ref.values()) <= {"A", "B"}  # only pairs whose human majority is decided
    la = {i: len(str(raw[i]["response1"]).split()) for i in items}  # a few answers are JSON booleans
    lb = {i: len(str(raw[i]["response2"]).split()) for i in items}
    verdict = {i: "A" if la[i] > lb[i] else "B" if lb[i] > la[i] else "tie" for i in items}
    assert card["p_longer"]["value"] == 1.0 and card["p_longer"]["n"] == sum(la[i] != lb[i] for i in items)
    assert card["position_consistency"]["value"] == 1.0 and card["position_consistency"]["n"] == 20
    assert card["p_first"]["value"] == 0.5  # a rule ignores the order: first shown in one order of two
    agree = card["agreement"]["pandalm"]
    assert agree["reference"] == "human-majority"
    assert agree["with_ties"]["count"] == sum(verdict[i] == ref[i] for i in items) and agree["with_ties"]["n"] == 20
    decisive = [i for i in items if verdict[i] != "tie"]
    assert agree["no_ties"]["n"] == len(decisive)
    assert agree["no_ties"]["value"] == pytest.approx(sum(verdict[i] == ref[i] for i in decisive) / len(decisive))


def test_position_only_judge_card_and_wilson_ci(store, shared_data):
    card = judge_card(store, PositionJudge(), n_pairs=16)
    assert set(card["agreement"]) == {"pandalm", "llmbar"}
    assert card["agreement"]["llmbar"]["reference"] == "gold (LLMBar)"
    pc, pf = card["position_consistency"], card["p_first"]
    assert (pc["value"], pc["n"]) == (0.0, 32) and (pf["value"], pf["n"]) == (1.0, 64)
    assert (pc["ci_low"], pc["ci_high"]) == pytest.approx(proportion_confint(0, 32, alpha=0.05, method="wilson"))
    assert (pf["ci_low"], pf["ci_high"]) == pytest.approx(proportion_confint(64, 64, alpha=0.05, method="wilson"))
    for fig in (pc, pf):
        assert "Wilson" in fig["method"]
    for k, n in [(7, 20), (0, 5), (13, 13), (500, 999)]:
        assert wilson(k, n) == pytest.approx(proportion_confint(k, n, method="wilson"))
    assert wilson(0, 0) == (None, None)
    rows = {(r["figure"], r["dataset"]): r for r in card_rows(card)}
    assert rows[("position_consistency", "pandalm+llmbar")]["value"] == 0.0
    assert rows[("agreement", "llmbar")]["reference"] == "gold (LLMBar)"
    line = card_line(card)
    assert "position consistency 0.00 (n=32" in line and "P(first shown) 1.00 (n=64" in line
    assert len(line.splitlines()) <= 3


def test_card_is_computed_once_per_annotator_version(store, shared_data):
    judge = PositionJudge()
    first = judge_card(store, judge, n_pairs=8)
    assert judge.asked == 16  # 8 pairs of each dataset, both orders in one call per pair
    again = judge_card(store, judge, n_pairs=8)
    assert judge.asked == 16 and again["result_id"] == first["result_id"]
    assert len(store.results("judge_validity")) == 1
    stored = store.results("judge_validity")[0]
    assert (stored["name"], stored["judge"], stored["baseline"]) == ("fake-position", "fake-position", "v1")
    other = PositionJudge(version="v2")  # a new version (new prompt, new config): measured again
    judge_card(store, other, n_pairs=8)
    assert len(store.results("judge_validity")) == 2
    # the label cache is per annotator version: the new version is asked again
    assert other.asked == 16


def test_missing_dataset_is_skipped_with_the_reason(store, tmp_path):
    card = judge_card(store, load_judge("rule:longer"), n_pairs=4, datasets={"pandalm": str(tmp_path / "nowhere")})
    assert "not found" in card["skipped"]["pandalm"] and card["agreement"] == {}
    assert card["position_consistency"]["n"] == 0 and card["position_consistency"]["value"] is None
    assert "skipped: pandalm" in card_line(card)
    check_consistency(card, 0.5, False, "judge")  # a rule judge is position-free by construction
    with pytest.raises(ConfigError, match="could not be measured"):
        check_consistency({**card, "annotator_kind": "llm"}, 0.5, False, "judge")
    with pytest.raises(ValueError, match="unknown dataset"):
        judge_card(store, load_judge("rule:longer"), datasets={"alpaca": "x"})


def test_check_consistency_names_the_figure(store, shared_data, capsys):
    card = judge_card(store, PositionJudge(), n_pairs=16)
    with pytest.raises(ConfigError) as e:
        check_consistency(card, 0.5, False, "judge")
    msg = str(e.value)
    assert msg.startswith("judge fake-position@v1: position consistency 0.00 (n=32, 95% CI [0.00, 0.11])")
    assert "below judge.min_consistency 0.5" in msg and "judge.allow_biased=true" in msg
    check_consistency(card, 0.5, True, "judge")
    assert "position consistency 0.00" in capsys.readouterr().err
    check_consistency(card, 0.0, False, "judge")  # threshold 0: anything passes


def test_oaif_train_gate_stops_a_position_judge(tmp_path, tiny_path, monkeypatch, capsys):
    """`harness train` with OAIF: the fake position judge (mocked in place of load_judge: the real
    embedded judge needs minutes per card on CPU) stops the run; allow_biased trains anyway and the
    summary carries the card and its result id."""
    import judges.registry
    from harness.cli import main
    from harness.store import Store

    monkeypatch.setattr(judges.registry, "load_judge", lambda *a, **k: PositionJudge())
    cfg = str(REPO / "configs" / "oaif_quickstart_rule_shorter.yaml")
    over = [f"model.name={tiny_path}", "train.steps=1", "train.batch_size=2", "train.checkpoint_every=0",
            "sampling.max_new_tokens=6", "judge.validity_pairs=4", f"judge.validity_data={SHARED}"]
    home = tmp_path / "home"
    assert main(["--home", str(home), "train", cfg, *over, "--run-id", "biased"]) == 2
    err = capsys.readouterr().err
    assert "position consistency 0.00 (n=8" in err and "judge.min_consistency 0.5" in err
    store = Store(home)
    assert store.get_run("biased")["status"] == "failed"
    assert main(["--home", str(home), "train", cfg, *over, "judge.allow_biased=true", "--run-id", "ok"]) == 0
    out = capsys.readouterr().out
    assert "judge_validity: judge fake-position@v1 validity: position consistency 0.00" in out
    [card] = store.results("judge_validity")  # measured once, read back by the second run
    logged = store.metrics(["ok"], split="judge_validity")
    assert logged["result_id"].tolist() == [card["result_id"]]
    assert logged["position_consistency/value"].tolist() == [0.0]


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory, embedded_path) -> str:
    from tiny_llama import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama", embedded_path)


def test_validity_command_prints_and_stores_the_card_once(tmp_path, capsys, shared_data):
    from harness.cli import main
    from harness.store import Store

    home = tmp_path / "home"
    for _ in range(2):
        assert main(["--home", str(home), "validity", "--judge", "rule:longer", "--n-pairs", "4"]) == 0
    out = capsys.readouterr().out
    assert out.count("judge rule:longer@") == 2 and "position consistency 1.00 (n=8" in out
    [stored] = Store(home).results("judge_validity")
    assert f"judge validity card (result {stored['result_id']})" in out


class UnparsedJudge(PositionJudge):
    """Answers every pair 'unparsed' (as a reference-guided judge does without a reference)."""

    def judge(self, pairs, orders):
        self.asked += len(pairs)
        return [[Label(pair_id=p.pair_id, annotator=self.annotator, verdict="unparsed", shown_order=o)
                 for o in orders] for p in pairs]


def test_a_judge_that_cannot_answer_is_not_measured_never_zero(store, shared_data):
    # a judge that answered nothing has no agreement (n=0), not an agreement of 0.00 with a tight CI
    j = UnparsedJudge()
    card = judge_card(store, j, n_pairs=8, datasets={"pandalm": str(PANDALM)})
    agree = card["agreement"]["pandalm"]
    assert j.asked == 8 and agree["with_ties"]["value"] is None and agree["with_ties"]["n"] == 0
    assert "agreement n/a (n=0)" in card_line(card)
    # a judge that declares it needs references is not even asked on reference-less pairs
    ref_judge = UnparsedJudge(version="v2")
    ref_judge.needs_reference = True
    card = judge_card(store, ref_judge, n_pairs=8, datasets={"pandalm": str(PANDALM)})
    assert ref_judge.asked == 0 and card["agreement"] == {} and "reference answers" in card["skipped"]["pandalm"]


def test_several_cards_side_by_side(tmp_path, capsys, shared_data):
    """`harness validity --judge A B`: both cards on the same pairs, one column each. rule:longer and
    rule:shorter give opposite verdicts wherever the lengths differ (and both tie elsewhere), so
    their agreements add up to the pairs of different length."""
    from harness.cli import main
    from harness.evaluation.validity import compare_rows

    home = tmp_path / "home"
    assert main(["--home", str(home), "validity", "--judge", "rule:longer", "rule:shorter", "--n-pairs", "6"]) == 0
    out = capsys.readouterr().out
    assert out.count("validity: position consistency") == 2 and "judge validity cards side by side" in out
    assert main(["--home", str(home), "--format", "json", "validity", "--judge", "rule:longer", "rule:shorter",
                 "--n-pairs", "6"]) == 0
    got = json.loads(capsys.readouterr().out)
    longer, shorter = got["cards"]
    for name in ("pandalm", "llmbar"):
        a, b = longer["agreement"][name], shorter["agreement"][name]
        assert a["items"] == b["items"]  # the same pairs
        assert a["with_ties"]["count"] + b["with_ties"]["count"] == a["no_ties"]["n"] == b["no_ties"]["n"]
    rows = {(r["figure"], r["dataset"]): r for r in got["side_by_side"]}
    col_l = f"rule:longer@{longer['annotator_version']}"
    col_s = f"rule:shorter@{shorter['annotator_version']}"
    assert rows[("P(longer)", "pooled")][col_l].startswith("1.00 [") and rows[("P(longer)", "pooled")][col_s].startswith("0.00 [")
    fig = longer["agreement"]["llmbar"]["with_ties"]
    assert rows[("agreement vs gold (LLMBar)", "llmbar")][col_l] == \
        f"{fig['value']:.2f} [{fig['ci_low']:.2f}, {fig['ci_high']:.2f}] n={fig['n']}"
    assert rows[("pointwise", "")][col_l] == "no"
    # a dataset one card lacks is n/a in its column; the same judge twice is refused
    partial = {**shorter, "agreement": {"pandalm": shorter["agreement"]["pandalm"]}}
    rows = {(r["figure"], r["dataset"]): r for r in compare_rows([longer, partial])}
    assert rows[("agreement vs gold (LLMBar)", "llmbar")][col_s] == "n/a (n=0)"
    with pytest.raises(ValueError, match="the same judge twice"):
        compare_rows([longer, longer])
