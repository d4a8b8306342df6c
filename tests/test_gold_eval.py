"""`harness eval --judge gold`: the gold scorer of the task as the evaluation judge (no model needed:
both sides are outputs files), its figures (gold score means, constraint satisfaction) counted by
hand, the clear error on a task that is not verifiable, and the OAIF gold config."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.config import ConfigError, JudgeRef, load_config
from harness.evaluation.gold_eval import resolve_ref
from harness.evaluation.validity import wilson
from harness.store import Store
from harness.verifiable import compose

REPO = Path(__file__).resolve().parents[1]

# (id, base, constraints, topic, reference, policy answer, baseline answer); gold scores by hand:
ROWS = [
    # policy 9 words with "water": 2.0; baseline 16 words, no "water": 1.0 -> win
    ("e1", "Explain how to boil an egg.", [{"type": "max_words", "n": 12}, {"type": "include_keyword", "word": "water"}],
     ["egg", "boil"], "Boil the egg in water for nine minutes.",
     "Put the egg in boiling water for nine minutes.",
     "Boil the egg for about nine minutes, then cool it down in a bowl of ice."),
    # policy lowercase: 2.0; baseline capital A: 1.0 -> win
    ("e2", "Describe a cat.", [{"type": "lowercase"}], ["cat"], "a cat is a small pet with soft fur.",
     "a cat is a small furry pet.", "A cat is a small furry pet."),
    # both degenerate (under 3 words): 0 and 0 -> tie the judge sees; both pass no_commas raw
    ("e3", "Name a fruit and say why you like it.", [{"type": "no_commas"}], ["fruit", "apple"],
     "I like an apple because it is sweet.", "ok", "yes yes"),
    # the same text on both sides: a tie the judge never sees; 2.0 each
    ("e4", "How do plants grow?", [{"type": "start_with", "word": "Plants"}], ["plant"],
     "Plants grow with light and water.", "Plants grow from light and water.", "Plants grow from light and water."),
    # policy two sentences: 1.0; baseline one: 2.0 -> loss
    ("e5", "Why is the sun hot?", [{"type": "max_sentences", "n": 1}], ["sun"], "The sun is hot because of fusion.",
     "The sun is hot. It burns gas.", "The sun is hot because of fusion."),
]


@pytest.fixture
def vtask(tmp_path) -> Path:
    """A tiny verifiable task in a tmp dir (harness.verifiable.compose writes each prompt)."""
    d = tmp_path / "vtiny"
    d.mkdir()
    (d / "task.yaml").write_text("name: vtiny\ndescription: tiny verifiable task for tests\n"
                                 "data:\n  prompts: prompts.jsonl\nrubric: Follow every instruction.\n")
    lines = [{"id": "t1", "base": "Describe a dog.", "constraints": [{"type": "lowercase"}], "topic": ["dog"],
              "prompt": compose("Describe a dog.", [{"type": "lowercase"}]), "reference": "a dog is a loyal pet.",
              "split": "train"}]
    for rid, base, cs, topic, ref, _, _ in ROWS:
        lines.append({"id": rid, "base": base, "constraints": cs, "topic": topic, "prompt": compose(base, cs),
                      "reference": ref, "split": "eval"})
    (d / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return d


def outputs(path: Path, col: int) -> Path:
    path.write_text("".join(json.dumps({"id": r[0], "prompt": compose(r[1], r[2]), "response": r[col]}) + "\n"
                            for r in ROWS))
    return path


def test_judge_gold_resolves_to_the_task_and_refuses_a_task_without_constraints(vtask):
    assert resolve_ref(JudgeRef(name="gold"), str(vtask)).name == f"gold:{vtask}"
    assert resolve_ref(JudgeRef(name="rule:longer"), "quickstart").name == "rule:longer"  # others pass unchanged
    with pytest.raises(ConfigError, match=r"--judge gold: task quickstart is not verifiable .*constraints"):
        resolve_ref(JudgeRef(name="gold"), "quickstart")


def test_cli_gold_on_quickstart_is_a_clear_error(tmp_path, capsys):
    pol = outputs(tmp_path / "p.jsonl", 5)
    assert main(["--home", str(tmp_path / "home"), "eval", "--policy", str(pol), "--baseline", str(pol),
                 "--judge", "gold", "--task", "quickstart"]) == 2
    assert "task quickstart is not verifiable" in capsys.readouterr().err


def test_gold_eval_of_outputs_files_hand_counted(tmp_path, vtask, capsys):
    pol, base = outputs(tmp_path / "pol.jsonl", 5), outputs(tmp_path / "base.jsonl", 6)
    home = tmp_path / "home"
    assert main(["--home", str(home), "--format", "json", "eval", "--policy", str(pol), "--baseline", str(base),
                 "--judge", "gold", "--task", str(vtask)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["judge"] == "vtiny:gold"
    assert (res["n"], res["wins"], res["ties"], res["losses"], res["n_identical"]) == (5, 2, 2, 1, 1)
    assert res["win_rate"] == pytest.approx(0.6) and res["ci_low"] <= 0.6 <= res["ci_high"]
    assert res["p_first"] == 0.5 and res["consistency"] == 1.0  # position-free: both orders agree
    g = res["gold"]
    assert g["policy"]["gold_mean"] == pytest.approx(7 / 5) and g["baseline"]["gold_mean"] == pytest.approx(6 / 5)
    assert g["policy"]["gold_ci_low"] <= 1.4 <= g["policy"]["gold_ci_high"]
    assert g["diff"]["mean"] == pytest.approx(0.2) and g["diff"]["n"] == 5
    # 6 (prompt, constraint) items: policy meets 5 (4 by non-degenerate answers), baseline 3 (2)
    for side, (k, kv) in (("policy", (5, 4)), ("baseline", (3, 2))):
        sat, val = g[side]["satisfied"], g[side]["satisfied_valid"]
        assert (sat["count"], sat["n"], val["count"], val["n"]) == (k, 6, kv, 6)
        assert (sat["ci_low"], sat["ci_high"]) == pytest.approx(wilson(k, 6))
        assert (g[side]["degenerate"]["count"], g[side]["degenerate"]["n"]) == (1, 5)
    # no PandaLM/LLMBar validity card for the gold scorer: it says why instead
    assert res["judge_card"]["gold"] is True and "truth by construction" in res["judge_card_line"]
    store = Store(home)
    assert store.results("judge_validity") == []
    [stored] = store.results("winrate")
    assert stored["judge"] == "vtiny:gold" and stored["result"]["gold"]["policy"]["satisfied"]["count"] == 5
    assert len(store.labels_df()) == 8  # 4 judged pairs x both orders (the identical pair is not asked)


def test_gold_eval_table_and_head_to_head(tmp_path, vtask, capsys):
    pol, base = outputs(tmp_path / "pol.jsonl", 5), outputs(tmp_path / "base.jsonl", 6)
    home = str(tmp_path / "home")
    assert main(["--home", home, "eval", "--policy", str(pol), "--baseline", str(base), "--judge", "gold",
                 "--task", str(vtask)]) == 0
    out = capsys.readouterr().out
    assert "judge vtiny:gold" in out and "gold scorer of task vtiny" in out
    assert "outputs:pol: gold 1.400" in out and "satisfied 0.83" in out and "(5/6)" in out
    assert main(["--home", home, "--format", "json", "eval", "--head-to-head", str(pol), str(base), "--judge", "gold",
                 "--task", str(vtask)]) == 0
    res = json.loads(capsys.readouterr().out)
    [row] = res["rows"]
    assert (row["wins"], row["ties"], row["losses"]) == (2, 2, 1)
    assert row["gold"]["baseline"]["gold_mean"] == pytest.approx(1.2) and "truth by construction" in res["judge_card_line"]


def test_oaif_gold_config_loads():
    cfg = load_config(REPO / "configs" / "oaif_verifiable_gold.yaml")
    assert cfg.algo == "oaif" and cfg.data.task == "verifiable" and cfg.judge.name == "gold:verifiable"
    assert cfg.loss.kind == "dpo" and cfg.train.steps == 20 and cfg.model.name == "smollm2-135m-instruct"
    assert cfg.oaif.tie_policy == "skip"  # hard gold labels: equal gold scores are ties, not trained on


def test_rm_simhuman_config_loads():
    cfg = load_config(REPO / "configs" / "rm_verifiable_simhuman.yaml")
    assert cfg.algo == "reward_model" and cfg.data.task == "verifiable"
    assert cfg.reward_model.annotators == ["sim-rater-1"] and cfg.reward_model.labels == "hard"


@pytest.mark.skipif(not (REPO / "tasks" / "verifiable" / "task.yaml").exists(), reason="tasks/verifiable not written yet")
def test_gold_resolves_on_the_verifiable_task():
    from judges.registry import load_judge

    ref = resolve_ref(JudgeRef(name="gold"), "verifiable")
    judge = load_judge(ref)
    assert ref.name == "gold:verifiable" and judge.annotator.id == "verifiable:gold" and judge.rows


def test_only_the_gold_scorer_counts_as_gold(vtask):
    from types import SimpleNamespace

    from harness.evaluation.gold_eval import is_gold
    from harness.records import Annotator
    from judges.gold import make_gold_judge

    assert is_gold(make_gold_judge(str(vtask)))
    # a judge built on gold (simulated raters name it in their config) is noisy: not the truth
    sim = Annotator(kind="simulated-human", id="sim-rater-1", version="v", config={"gold": "vtiny:gold"})
    assert not is_gold(SimpleNamespace(annotator=sim))
    assert not is_gold(SimpleNamespace(annotator=Annotator(kind="rule", id="rule:longer", version="1")))


def test_oaif_validity_gate_computes_no_card_for_the_gold_judge(vtask, tmp_path, monkeypatch):
    """The gold scorer answers no PandaLM/LLMBar pair: the gate returns the 'truth by construction'
    card without computing one (a computed card would be all n/a and store unparsed labels)."""
    from types import SimpleNamespace

    from harness.pipelines import train
    from judges.gold import make_gold_judge

    def no_card(*a, **k):
        raise AssertionError("judge_card must not run for the gold scorer")

    monkeypatch.setattr(train.validity, "judge_card", no_card)
    judge = make_gold_judge(str(vtask))
    acc = SimpleNamespace(is_main_process=True)
    card = train.validity_gate(SimpleNamespace(algo="oaif"), Store(tmp_path / "h"), "r", SimpleNamespace(judge=judge), acc)
    assert card["gold"] is True and card["annotator_id"] == "vtiny:gold"
    assert Store(tmp_path / "h").labels_df().empty
