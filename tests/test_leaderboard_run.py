"""Leaderboard runs on real material: battles built from ../shared/data/mt_bench (and arena_hard_v0.1),
judged by a cheap deterministic rule judge, Bradley-Terry with CIs, stored, resumable."""
from __future__ import annotations

import itertools
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from harness.cli import main
from harness.pipelines.leaderboard import (Comparison, load_run_config, position_bias, rank_correlation,
                                              read_scores)
from harness.config import ConfigError
from harness.benchmark_answers import PairSelection, build_pairs
from harness.records import Annotator, Judgement, Label, Pair
from judges.importers.common import LabelImportError

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "leaderboard_mtbench.yaml"
FOUR = ["gpt-4", "alpaca-13b", "vicuna-7b-v1.3", "llama-13b"]


@pytest.fixture(scope="module")
def mt(shared_data) -> Path:
    return shared_data / "mt_bench" / "mt_bench"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_pairs_from_real_mtbench_files(mt):
    questions = {str(q["question_id"]): q for q in _jsonl(mt / "question.jsonl")}
    answers = {m: {str(r["question_id"]): r["choices"][0]["turns"] for r in _jsonl(mt / "model_answer" / f"{m}.jsonl")}
               for m in FOUR}
    refs = {str(r["question_id"]) for r in _jsonl(mt / "reference_answer" / "gpt-4.jsonl")}
    pairs = build_pairs(PairSelection(path=str(mt), models=FOUR, questions_per_category=1))
    assert len(pairs) == 8 * 6  # one question per category, all C(4, 2) model pairs on each
    assert Counter(p.subset for p in pairs) == {c: 6 for c in
                                                 ("writing", "roleplay", "reasoning", "math", "coding", "extraction",
                                                  "stem", "humanities")}
    for p in pairs:
        qid, ma, mb = p.record_id.split(":")
        assert (ma, mb) == (p.policy_a, p.policy_b) and ma != mb and {ma, mb} <= set(FOUR)
        assert p.dataset == "mt_bench" and p.subset == questions[qid]["category"]
        assert p.prompt == questions[qid]["turns"][0]
        assert p.response_a == answers[ma][qid][0] and p.response_b == answers[mb][qid][0]
        # GPT-4 references exist for math, reasoning and coding only
        assert (p.reference is not None) == (qid in refs)
    assert {p.subset for p in pairs if p.reference} == {"math", "reasoning", "coding"}
    # every model pair once per question, A/B drawn at random (both orientations occur)
    per_q = Counter(p.record_id.split(":")[0] for p in pairs)
    assert set(per_q.values()) == {6}
    assert any(p.policy_a > p.policy_b for p in pairs) and any(p.policy_a < p.policy_b for p in pairs)


def test_balanced_seeded_sample_of_model_pairs(mt):
    sel = PairSelection(path=str(mt), n_questions=10, pairs_per_question=9, seed=3)  # all 31 models
    pairs = build_pairs(sel)
    assert len(pairs) == 90 and len({p.record_id.split(":")[0] for p in pairs}) == 10
    again = build_pairs(sel)
    assert [p.record_id for p in pairs] == [p.record_id for p in again]  # seeded: reproducible
    other = build_pairs(PairSelection(path=str(mt), n_questions=10, pairs_per_question=9, seed=4))
    assert [p.record_id for p in other] != [p.record_id for p in pairs]
    ten = ["gpt-4", "gpt-3.5-turbo", "claude-v1", "vicuna-33b-v1.3", "guanaco-33b", "vicuna-7b-v1.3", "koala-13b",
           "alpaca-13b", "dolly-v2-12b", "llama-13b"]
    bal = build_pairs(PairSelection(path=str(mt), models=ten, n_questions=10, pairs_per_question=9))
    # the 45 model pairs are dealt out evenly: each compared exactly twice over 10 x 9 battles
    assert Counter(frozenset((p.policy_a, p.policy_b)) for p in bal) == {frozenset(c): 2 for c in
                                                                         itertools.combinations(ten, 2)}


def test_second_turn_and_arena_hard(mt, shared_data):
    two = build_pairs(PairSelection(path=str(mt), models=FOUR[:2], question_ids=["81"], turn=2))
    assert len(two) == 1
    p = two[0]
    assert p.prompt.startswith("[Turn 1] ") and "\n\n[Turn 2] " in p.prompt
    assert p.response_a.startswith("[Turn 1] ") and "[Turn 2] " in p.response_b
    ah = build_pairs(PairSelection(format="arena_hard", path=str(shared_data / "arena_hard_v0.1"), n_questions=4))
    assert len(ah) == 4 * 3 and {p.dataset for p in ah} == {"arena_hard"}
    assert {m for p in ah for m in (p.policy_a, p.policy_b)} == {"gpt-3.5-turbo-0125", "gpt-4-0314", "gpt-4-0613"}
    qs = {q["question_id"]: q for q in _jsonl(shared_data / "arena_hard_v0.1" / "question.jsonl")}
    for p in ah:
        q = qs[p.record_id.split(":")[0]]
        assert p.subset == q["cluster"] and p.prompt == q["turns"][0]["content"] and p.reference is None


def _broken_copy(mt: Path, tmp_path: Path) -> Path:
    root = tmp_path / "bench"
    (root / "model_answer").mkdir(parents=True)
    shutil.copy(mt / "question.jsonl", root / "question.jsonl")
    for m in FOUR[:2]:
        shutil.copy(mt / "model_answer" / f"{m}.jsonl", root / "model_answer" / f"{m}.jsonl")
    return root


def test_errors_name_file_line_and_field(mt, tmp_path):
    root = _broken_copy(mt, tmp_path)
    ans = root / "model_answer" / "alpaca-13b.jsonl"
    lines = ans.read_text().splitlines()
    rec = json.loads(lines[2])
    del rec["choices"]
    lines[2] = json.dumps(rec)
    ans.write_text("\n".join(lines) + "\n")
    with pytest.raises(LabelImportError) as e:
        build_pairs(PairSelection(path=str(root)))
    assert str(ans) in str(e.value) and "line 3" in str(e.value) and "'choices'" in str(e.value)

    lines[2] = lines[2][:-5]  # truncated JSON
    ans.write_text("\n".join(lines) + "\n")
    with pytest.raises(LabelImportError, match=r"alpaca-13b\.jsonl: line 3: invalid JSON"):
        build_pairs(PairSelection(path=str(root)))

    shutil.copy(mt / "model_answer" / "alpaca-13b.jsonl", ans)
    q = root / "question.jsonl"
    qlines = q.read_text().splitlines()
    bad = json.loads(qlines[4])
    bad["turns"] = [7]
    qlines[4] = json.dumps(bad)
    q.write_text("\n".join(qlines) + "\n")
    with pytest.raises(LabelImportError) as e:
        build_pairs(PairSelection(path=str(root)))
    assert str(q) in str(e.value) and "line 5" in str(e.value) and "'turns[0]'" in str(e.value)

    with pytest.raises(FileNotFoundError, match="no-such-model"):
        build_pairs(PairSelection(path=str(mt), models=["gpt-4", "no-such-model"]))


def test_config_is_validated(tmp_path, mt):
    cfg = load_run_config(CONFIG, [f"source.path={mt}"])
    assert cfg.judge.name == "smollm2-logprob" and cfg.judge.both_orders is True
    assert len(build_pairs(cfg.source)) == 16 * 6  # the shipped run: 2 questions per category x 6 pairs
    with pytest.raises(ConfigError, match=r"source\.n_question\b"):
        load_run_config(CONFIG, ["source.n_question=3"])
    with pytest.raises(ConfigError, match="judge.max_response_tokens"):
        load_run_config(CONFIG, ["judge.max_response_tokens=0"])
    with pytest.raises(ConfigError, match="source.turn"):
        load_run_config(CONFIG, ["source.turn=3"])
    with pytest.raises(ConfigError, match="leaderboard.anchor"):
        load_run_config(CONFIG, ["leaderboard.anchor=gpt-4"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("source:\n  models: [a, b]\n  seeds: 1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:.*source\.seeds"):
        load_run_config(bad)


def _words(text: str) -> int:
    return len(text.split())


def test_end_to_end_rule_judge_leaderboard(mt, tmp_path, capsys):
    """rule:longer on 3 real questions x all 6 pairs of 4 models: the verdicts must be the word-count
    comparison computed here from the raw files; in this complete balanced design the BT ratings are
    ordered as the models' win counts; the CIs contain the point estimates; a rerun asks nothing."""
    home = tmp_path / "home"
    qids = ["101", "111", "131"]
    argv = ["--home", str(home), "--format", "json", "leaderboard-run", str(CONFIG), f"source.path={mt}",
            f"source.models=[{', '.join(FOUR)}]", f"source.question_ids=[{', '.join(qids)}]",
            "source.questions_per_category=null", "source.pairs_per_question=null", "judge.name=rule:longer",
            "judge.both_orders=null", "judge.max_response_tokens=null", "judge.max_prompt_tokens=null",
            "judge.batch_size=null", "leaderboard.n_boot=200", "chunk_size=5",
            f"compare_with=[{{path: {REPO / 'configs/reference_scores/mtbench_gpt4_single.csv'}}}]"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)

    answers = {m: {str(r["question_id"]): r["choices"][0]["turns"][0] for r in
                   _jsonl(mt / "model_answer" / f"{m}.jsonl")} for m in FOUR}
    wins, ties = Counter(), 0
    for q in qids:
        for a, b in itertools.combinations(FOUR, 2):
            na, nb = _words(answers[a][q]), _words(answers[b][q])
            wins[a] += na > nb
            wins[b] += nb > na
            ties += na == nb
    rows = {r["model"]: r for r in out["ratings"]}
    assert set(rows) == set(FOUR) and out["n_battles"] == 18
    for m in FOUR:
        assert rows[m]["wins"] == wins[m] and rows[m]["n_battles"] == 9
        assert rows[m]["ci_low"] <= rows[m]["rating"] <= rows[m]["ci_high"]
    assert sum(r["ties"] for r in rows.values()) == 2 * ties
    for a, b in itertools.combinations(FOUR, 2):
        if wins[a] != wins[b]:
            assert (rows[a]["rating"] > rows[b]["rating"]) == (wins[a] > wins[b])
    assert out["cost"]["pairs"] == 18 and out["cost"]["judge_calls"] == 18 and out["cost"]["cached_labels"] == 0
    # the judge's validity card rides with the ratings (rule:longer: order-free by construction)
    assert "position consistency 1.00" in out["judge_card_line"] and out["judge_card_result_id"] is not None
    assert out["judges"] == ["rule:longer"] and out["dataset"] == "mt_bench"
    corr = out["correlations"][0]
    assert corr["n_models"] == 4 and -1 <= corr["spearman"] <= 1

    from harness.store import Store

    stored = Store(home).results("leaderboard")
    assert len(stored) == 1 and stored[0]["judge"] == "rule:longer"
    assert {r["model"] for r in stored[0]["result"]["ratings"]} == set(FOUR)

    # resumable: everything is in the label cache now
    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["cost"]["judge_calls"] == 0 and again["cost"]["cached_labels"] == 18
    assert [r["rating"] for r in again["ratings"]] == [r["rating"] for r in out["ratings"]]


def test_rule_judge_ignores_llm_settings_with_a_note(mt, tmp_path, capsys):
    argv = ["--home", str(tmp_path), "--format", "json", "leaderboard-run", str(CONFIG), f"source.path={mt}",
            "judge.name=rule:shorter", "judge.both_orders=null", "source.questions_per_category=1",
            "source.pairs_per_question=1", "leaderboard.n_boot=0", "compare_with=[]"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "judge.max_response_tokens" in captured.err and "ignored for rule:shorter" in captured.err
    out = json.loads(captured.out)
    assert out["judges"] == ["rule:shorter"] and out["cost"]["pairs"] == 8
    assert all(r["ci_low"] is None for r in out["ratings"])  # n_boot 0: no CIs
    with pytest.raises(ConfigError, match="unknown judge"):
        from harness.pipelines.leaderboard import JudgeSettings, load_configured_judge

        load_configured_judge(JudgeSettings(name="no-such-judge", max_response_tokens=64), tmp_path)


def _judgement(pair, verdicts):
    ann = Annotator("llm", "fake-positional", "1")  # hand-made labels: the statistic is what is tested
    labels = [Label(pair.pair_id, ann, v, o) for o, v in zip(("AB", "BA"), verdicts)]
    consistent = len(set(verdicts)) == 1
    verdict = verdicts[0] if consistent else "tie"
    return Judgement(pair, verdict, None, labels, consistent)


def test_position_bias_by_hand():
    p1 = Pair("q", "short", "a much longer answer", policy_a="x", policy_b="y")
    p2 = Pair("q2", "long long long", "s", policy_a="x", policy_b="y")
    # p1: first shown wins in both orders (A then B): inconsistent; p2: A both times: consistent
    js = [_judgement(p1, ["A", "B"]), _judgement(p2, ["A", "A"]), _judgement(p2, ["A", "A"])]  # p2 twice: counted once
    b = position_bias(js, n_boot=100)
    # decisive labels: p1 AB->A (first), p1 BA->B (first), p2 AB->A (first), p2 BA->A (second)
    assert b["n_pairs"] == 2 and b["n_decisive_labels"] == 4 and b["p_first"] == pytest.approx(0.75)
    assert b["position_consistency"] == pytest.approx(0.5)
    assert b["p_longer"] == 1.0 and b["n_longer"] == 1  # p2's combined verdict A is the longer one
    assert b["p_first_ci_low"] <= 0.75 <= b["p_first_ci_high"]


def test_rank_correlation_and_score_file_errors(tmp_path):
    import pandas as pd

    csv = tmp_path / "s.csv"
    csv.write_text("# comment\nmodel,score\nm1,3\nother-name,2\nm3,1\n")
    ratings = pd.DataFrame({"model": ["m1", "m2", "m3"], "rating": [1100.0, 1000.0, 900.0]})
    r = rank_correlation(ratings, Comparison(path=str(csv), rename=["m2=other-name"]))
    assert r["n_models"] == 3 and r["spearman"] == pytest.approx(1.0) and r["kendall"] == pytest.approx(1.0)
    r = rank_correlation(ratings, Comparison(path=str(csv)))
    assert r["n_models"] == 2 and r["spearman"] is None  # too few models in common for a correlation
    csv.write_text("# from somewhere\nmodel,score\nm1,1\nm2,high\n")
    with pytest.raises(ValueError, match=r"s\.csv: line 4: field 'score'"):
        read_scores(Comparison(path=str(csv)))
