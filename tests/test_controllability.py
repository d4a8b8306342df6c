"""The controllability study with rule annotators: OAIF with `rule:shorter` makes responses shorter,
with `rule:longer` longer, from the same start (same config, same seed).

The policy is a tiny random Llama with the SmolLM2 tokenizer whose head writes ~20 common words and
ends after ~18 tokens on average (tests/tiny_llama.py), trained through a LoRA adapter on its output
head at a high learning rate: the embedded 135M model needs minutes per step on this CPU, and this
test is about the loop (sampling -> annotator -> DPO -> sampling), not about the model. The
embedded-model study is `harness study controllability` (see the issue's report). The judge validity
card is stubbed (tests/card_stub.py): these tests check where it is printed, not the card."""
from __future__ import annotations

from pathlib import Path

import pytest

from card_stub import install_card_stub
from harness.cli import main
from harness.pipelines.controllability import held_out_judge
from tiny_llama import make_tiny_llama

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def card(monkeypatch) -> list[str]:
    return install_card_stub(monkeypatch)


@pytest.fixture(scope="module")
def words_model(tmp_path_factory, embedded_path) -> str:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny") / "words", embedded_path, words=True)


def test_rule_annotators_steer_length_apart(tmp_path, words_model, capsys):
    from harness.store import Store

    home = tmp_path / "home"
    over = [f"model.name={words_model}", "train.steps=6", "train.batch_size=8", "train.lr=3e-2",
            "train.checkpoint_every=0", "model.lora.enabled=true", "model.lora.target_modules=[lm_head]",
            "model.lora.r=4", "model.lora.dropout=0.0", "sampling.max_new_tokens=32"]
    rc = main(["--home", str(home), "study", "controllability", str(REPO / "configs" / "oaif_quickstart_rule_shorter.yaml"),
               *over, "--judges", "rule:shorter", "rule:longer", "--eval-judge", "rule:longer", "--eval-n", "6",
               "--eval-temperature", "1.0",
               "--group", "ctl"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "controllability (ctl" in printed and "rule:shorter" in printed
    # the explicitly chosen judge trained one of the arms: said so, and the verdicts carry n and the CI
    assert "graded by rule:longer, NOT held out: it trained arm(s) rule:longer" in printed
    assert "rule:shorter: " in printed and "the initial policy at n=6 (CI [" in printed
    assert "validity card, evaluation judge rule:longer: CARD[rule:longer]" in printed

    store = Store(home)
    [res] = store.results("controllability")
    shorter, longer = res["result"]["arms"]
    assert res["result"]["eval_judge_held_out"] is False and res["result"]["eval_judge_trained"] == ["rule:longer"]
    assert (shorter["judge"], longer["judge"]) == ("rule:shorter", "rule:longer")
    s_len = [s["len_mean"] for s in shorter["per_step"]]
    l_len = [s["len_mean"] for s in longer["per_step"]]
    assert len(s_len) == len(l_len) == 6
    assert s_len[0] == l_len[0]  # same seed, same start: the first samples are identical
    # the annotator's taste, as measured on its own pairs
    assert shorter["prefers_shorter"] > 0.9 and longer["prefers_shorter"] < 0.1
    # lengths move apart in the expected directions
    assert shorter["len_last3"] < 0.6 * s_len[0]
    assert longer["len_last3"] > 1.25 * l_len[0]
    assert shorter["words_last3"] < longer["words_last3"]
    # the final win rate vs the initial policy under the fixed judge (here: longer is better)
    assert longer["winrate"]["n"] == shorter["winrate"]["n"] == 6
    assert longer["winrate"]["win_rate"] > 0.5 > shorter["winrate"]["win_rate"]
    # both runs are ordinary OAIF runs in one group, with their samples and labels stored per step
    runs = store.list_runs(group="ctl")
    assert sorted(r["run_id"] for r in runs) == sorted([shorter["run_id"], longer["run_id"]])
    assert all(r["algo"] == "oaif" and r["status"] == "done" for r in runs)
    n = store.query("SELECT run_id, COUNT(DISTINCT step) AS steps FROM labels WHERE run_id LIKE 'ctl-%' GROUP BY run_id")
    assert {r["steps"] for r in n} == {6}
    assert len(store.results("winrate")) == 2

    # running the study again reuses the finished runs (no retraining) and stores a second summary
    assert main(["--home", str(home), "study", "controllability",
                 str(REPO / "configs" / "oaif_quickstart_rule_shorter.yaml"), *over,
                 "--judges", "rule:shorter", "rule:longer", "--group", "ctl", "--no-eval"]) == 0
    again = store.results("controllability")[-1]["result"]["arms"]
    assert [a["per_step"] for a in again] == [shorter["per_step"], longer["per_step"]]


def test_study_argument_errors(tmp_path):
    cfg = str(REPO / "configs" / "oaif_quickstart_rule_shorter.yaml")
    with pytest.raises(ValueError, match="--instructions or --judges"):
        from harness.pipelines.controllability import run_study
        from harness.store import Store

        run_study(Store(tmp_path), cfg, [], None, None)
    with pytest.raises(ValueError, match="takes no instruction"):
        run_study(Store(tmp_path), cfg, [], ["Prefer the shorter response."], None)
    with pytest.raises(ValueError, match="not 'sft'"):
        run_study(Store(tmp_path), str(REPO / "configs" / "sft_quickstart.yaml"), [], None, ["rule:shorter"])


def test_held_out_judge_default_trained_no_arm():
    # instruction arms all train the config's LLM judge: the old default graded them with it
    assert held_out_judge(["smollm2-logprob", "smollm2-logprob"], True) == ("minilm-reference", True)
    assert held_out_judge(["rule:shorter", "rule:longer"], True) == ("minilm-reference", True)
    # no reference answers: the reference-similarity judge cannot grade; the LLM judge did not train
    assert held_out_judge(["rule:shorter"], False) == ("smollm2-logprob", True)
    assert held_out_judge(["minilm-reference", "rule:longer"], True) == ("smollm2-logprob", True)
    with pytest.raises(ValueError, match="no held-out evaluation judge.*smollm2-logprob.*give --eval-judge"):
        held_out_judge(["smollm2-logprob"], False)
    # an explicit choice wins, and says whether it is held out
    assert held_out_judge(["rule:shorter", "rule:longer"], True, "rule:longer") == ("rule:longer", False)
    assert held_out_judge(["rule:shorter"], True, "rule:longer") == ("rule:longer", True)


def test_study_grades_with_a_held_out_judge_by_default(tmp_path, words_model, capsys):
    from harness.store import Store

    home = tmp_path / "home"
    over = [f"model.name={words_model}", "train.steps=1", "train.batch_size=2", "train.checkpoint_every=0",
            "sampling.max_new_tokens=8"]
    assert main(["--home", str(home), "study", "controllability",
                 str(REPO / "configs" / "oaif_quickstart_rule_shorter.yaml"), *over,
                 "--judges", "rule:shorter", "rule:longer", "--eval-n", "2", "--group", "ho"]) == 0
    printed = capsys.readouterr().out
    assert "graded by minilm-reference, held out: it trained none of the arms" in printed
    [res] = Store(home).results("controllability")
    assert res["result"]["eval_judge"] == "minilm-reference" and res["result"]["eval_judge_held_out"] is True
    assert res["judge"] == "minilm-reference"
    assert {w["judge"] for w in Store(home).results("winrate")} == {"minilm-reference"}
