"""Published figures, reproduced from the raw verdicts in ../shared/data.

- LLMBar (princeton-nlp/LLMBar): per evaluator and subset, "correct_average" (Acc.) and "equal"
  (positional agreement, Agr.) of the Vanilla_NoRules evaluators; pinned values are those of the
  authors' `Dataset/<subset>/evaluators/<LLM>/Vanilla_NoRules/statistics.json` (the numbers of the
  paper's tables), and every evaluator x subset is checked against LLMBar's own formulas applied to
  the result files.
- PandaLM (WeOpenML/PandaLM): gpt-3.5-turbo and PandaLM-7B against the majority of the three human
  annotators; accuracy and macro precision/recall/F1 as printed in the repository's
  data/compute_metrics.py (which reads "Tie" and "garbage" as a tie: our unparsed='tie'); the
  annotators' pairwise Cohen's kappa (0.85, 0.88, 0.86) and the label distribution (105/422/472)
  from its README.
"""
from __future__ import annotations

import json

import pytest

from harness.cli import main
from harness.evaluation import agreement_table, attach_reference, label_frame, pairwise_kappa, per_item_verdicts
from harness.store import Store
from judges.importers import import_labels

from conftest import SHARED_DATA

LLMBAR = SHARED_DATA / "llmbar"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    if not SHARED_DATA.exists():
        pytest.skip(f"{SHARED_DATA} missing")
    path = tmp_path_factory.mktemp("published")
    store = Store(path)
    import_labels(store, "llmbar", LLMBAR)
    import_labels(store, "pandalm", SHARED_DATA / "pandalm_testset")
    return path


@pytest.fixture(scope="module")
def llmbar_table(home):
    return agreement_table(label_frame(Store(home), dataset="llmbar"), reference="gold", n_boot=0)


# (subset, evaluator): correct_False, correct_True, correct_average, correct_both, equal -- statistics.json
PUBLISHED = {
    ("Natural", "GPT-4"): (0.92, 0.95, 0.935, 0.92, 0.97),
    ("Natural", "PaLM2"): (0.77, 0.87, 0.82, 0.74, 0.84),
    ("Adversarial/Neighbor", "ChatGPT"): (25 / 134, 23 / 134, 0.1791044776119403, 6 / 134, 98 / 134),
    ("Processed/LLMEval^2", "PaLM2"): (133 / 200, 131 / 200, 0.66, 113 / 200, 162 / 200),
}


@pytest.mark.parametrize("key", sorted(PUBLISHED))
def test_llmbar_pinned_statistics(llmbar_table, key):
    subset, llm = key
    row = llmbar_table[(llmbar_table["subset"] == subset)
                       & (llmbar_table["annotator"] == f"llmbar:{llm}/Vanilla_NoRules")].iloc[0]
    acc_ab, acc_ba, acc_avg, acc_both, equal = PUBLISHED[key]
    assert row["acc_ab"] == pytest.approx(acc_ab)
    assert row["acc_ba"] == pytest.approx(acc_ba)
    assert row["acc_avg"] == pytest.approx(acc_avg)
    assert row["acc_both"] == pytest.approx(acc_both)
    assert row["position_consistency"] == pytest.approx(equal)


def test_llmbar_every_evaluator_and_subset_matches_the_authors_formulas(llmbar_table):
    """LLMBar's evaluate.py: correct_X = (winner_X == str(label)), equal = (winner_False == winner_True),
    a null winner being wrong, and equal to another null."""
    checked = 0
    for res in sorted((LLMBAR / "Dataset").rglob("Vanilla_NoRules/result.json")):
        subset = res.parents[3].relative_to(LLMBAR / "Dataset").as_posix().removeprefix("LLMBar/")
        llm = res.parents[1].name
        data = json.loads(res.read_text())
        cf = ct = cb = eq = 0
        for inst in data:
            label = str(inst["label"])
            w_f, w_t = (inst["results"][-1][k]["winner"] for k in ("swap = False", "swap = True"))
            cf += w_f == label
            ct += w_t == label
            cb += (w_f == label) and (w_t == label)
            eq += w_f == w_t
        n = len(data)
        row = llmbar_table[(llmbar_table["subset"] == subset)
                           & (llmbar_table["annotator"] == f"llmbar:{llm}/Vanilla_NoRules")].iloc[0]
        assert row["n"] == n
        assert row["acc_avg"] == pytest.approx((cf + ct) / 2 / n), (subset, llm)
        assert row["acc_both"] == pytest.approx(cb / n), (subset, llm)
        assert row["position_consistency"] == pytest.approx(eq / n), (subset, llm)
        checked += 1
    assert checked == 42  # 6 evaluators x 5 LLMBar subsets + 4 x 3 processed sets


def test_pandalm_ai_annotators_against_the_human_majority(home):
    frame = label_frame(Store(home), dataset="pandalm")
    t = agreement_table(frame, reference="human-majority", unparsed="tie", n_boot=0).set_index("annotator")
    gpt = t.loc["pandalm:gpt-3.5-turbo"]
    assert gpt["n"] == 999
    assert round(gpt["agreement"], 4) == 0.7107
    assert round(gpt["macro_precision"], 4) == 0.5879
    assert round(gpt["macro_recall"], 4) == 0.5736
    assert round(gpt["macro_f1"], 4) == 0.5755
    panda = t.loc["pandalm:pandalm-7b"]
    assert (round(panda["agreement"], 4), round(panda["macro_precision"], 4), round(panda["macro_recall"], 4),
            round(panda["macro_f1"], 4)) == (0.6677, 0.5738, 0.5750, 0.5743)
    # PandaLM's script always averages three classes: the named option gives the same pinned numbers here
    three = agreement_table(frame, reference="human-majority", unparsed="tie", n_boot=0,
                            macro_classes="pandalm").set_index("annotator")
    assert three.loc["pandalm:gpt-3.5-turbo", "macro_classes"] == "A,B,tie"
    assert round(three.loc["pandalm:gpt-3.5-turbo", "macro_f1"], 4) == 0.5755
    # humans are scored on the same 999 items as the AI, each against the other two (issue #12 item 10)
    hum = t.loc["pandalm:annotator1"]
    assert hum["n"] == 999 and hum["reference_used"] == "majority of other humans (LOO)"
    assert gpt["reference_used"] == "human majority"
    # with our default (an unparsed verdict is wrong) gpt-3.5 loses the 'garbage' items that were ties
    strict = agreement_table(frame, reference="human-majority", n_boot=0).set_index("annotator")
    assert strict.loc["pandalm:gpt-3.5-turbo", "n_unparsed"] == 25
    assert strict.loc["pandalm:gpt-3.5-turbo", "agreement"] < gpt["agreement"]


def test_pandalm_human_agreement_matches_the_readme(home):
    frame = label_frame(Store(home), dataset="pandalm")
    pk = pairwise_kappa(frame).set_index(["annotator_1", "annotator_2"])["kappa"].round(2)
    assert pk.to_dict() == {("pandalm:annotator1", "pandalm:annotator2"): 0.85,
                            ("pandalm:annotator1", "pandalm:annotator3"): 0.88,
                            ("pandalm:annotator2", "pandalm:annotator3"): 0.86}
    # the majority label of each record: 105 ties, 422 response1, 472 response2
    items = attach_reference(per_item_verdicts(frame), "human-majority")
    ref = items[items["annotator"] == "pandalm:gpt-3.5-turbo"]["ref"].value_counts().to_dict()
    assert ref == {"tie": 105, "A": 422, "B": 472}


def test_agreement_and_leaderboard_commands_store_results(home, capsys):
    assert main(["--home", str(home), "agreement", "--dataset", "llmbar", "--n-boot", "20"]) == 0
    out = capsys.readouterr().out
    assert "llmbar:GPT-4/Vanilla_NoRules" in out and "Natural" in out
    assert main(["--home", str(home), "--format", "json", "agreement", "--dataset", "pandalm", "--n-boot", "20"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["human_reliability"][0]["n_humans"] == 3 and res["human_reliability"][0]["n_items"] == 999
    assert 0.85 < res["human_reliability"][0]["ceiling"] < 1.0
    loo = {r["annotator"]: r["loo_agreement"] for r in res["loo"]}
    assert loo["pandalm:gpt-3.5-turbo"] < res["human_reliability"][0]["ceiling"]
    store = Store(home)
    stored = store.results("agreement")
    assert {r["name"] for r in stored} >= {"agreement:llmbar:auto", "agreement:pandalm:auto"}
    assert stored[-1]["result"]["agreement"][0]["reference"] == "human-majority"
    assert main(["--home", str(home), "agreement", "--dataset", "pandalm", "--reference", "nobody"]) == 2
    assert "not an annotator" in capsys.readouterr().err
    # PandaLM pairs name the two models (cmp_key): a human-judged leaderboard of its five models
    assert main(["--home", str(home), "--format", "json", "leaderboard", "--dataset", "pandalm", "--judge",
                 "pandalm:annotator1", "pandalm:annotator2", "pandalm:annotator3", "--n-boot", "50"]) == 0
    lb = json.loads(capsys.readouterr().out)
    assert lb["n_battles"] == 3 * 999 and len(lb["ratings"]) == 5
    assert lb["ratings"][0]["model"] == "llama-7b"
    assert store.results("leaderboard")[-1]["result"]["win_rate_matrix"]["llama-7b"]["llama-7b"] is None
