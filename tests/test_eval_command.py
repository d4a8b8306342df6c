"""`harness eval`: policy vs baseline on a task's eval prompts, both orders, stored as a `winrate`
result with its pairs and labels. Policies here: an outputs file, a model dir, a run's checkpoint;
baselines: the task's reference answers, a model, the run's initial policy. `--head-to-head`
compares several policies with each other. The judge validity card is stubbed here
(tests/card_stub.py: these tests check that it is printed, tests/test_validity_*.py the card)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.evaluation.verdicts import verdict_line
from harness.store import Store
from harness.tasks import load_task
from card_stub import install_card_stub
from tiny_llama import make_tiny_llama

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def card(monkeypatch) -> list[str]:
    return install_card_stub(monkeypatch)


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory, embedded_path) -> str:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama", embedded_path)


def write_outputs(path: Path, rows, make) -> Path:
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps({"id": r["id"], "prompt": r["prompt"], "response": make(r)}) + "\n")
    return path


def test_outputs_file_vs_reference_counts_and_stores(tmp_path, capsys):
    rows = load_task("quickstart").prompts("eval")[:6]
    # the policy repeats the reference answer twice on even prompts, answers "Yes." on odd ones
    outputs = write_outputs(tmp_path / "pol.jsonl", rows,
                            lambda r: r["reference"] + " " + r["reference"] if rows.index(r) % 2 == 0 else "Yes.")
    home = tmp_path / "home"
    assert main(["--home", str(home), "--format", "json", "eval", "--policy", str(outputs), "--baseline", "reference",
                 "--judge", "rule:longer", "--task", "quickstart", "--n", "6"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert (res["n"], res["wins"], res["losses"], res["ties"]) == (6, 3, 3, 0)
    assert res["win_rate"] == 0.5 and res["ci_low"] <= 0.5 <= res["ci_high"]
    assert res["policy"] == "outputs:pol" and res["baseline"] == "reference"
    assert res["p_first"] == 0.5 and res["consistency"] == 1.0  # a rule ignores the order
    store = Store(home)
    [stored] = store.results("winrate")
    assert stored["result"]["win_rate"] == 0.5 and stored["baseline"] == "reference" and stored["judge"] == "rule:longer"
    labels = store.labels_df()
    assert len(labels) == 12 and set(labels["shown_order"]) == {"AB", "BA"}  # both orders of each pair
    assert set(labels["policy_a"]) == {"outputs:pol"} and set(labels["policy_b"]) == {"reference"}
    # length-controlled: 6 pairs are too few to fit it; the reason is carried, not a number
    assert res["lc_identified"] is False and "n=6" in res["lc_reason"]
    assert res["lc_win_rate"] != res["lc_win_rate"]  # NaN


def test_model_vs_model_and_table_output(tmp_path, tiny_path, capsys):
    home = tmp_path / "home"
    assert main(["--home", str(home), "eval", "--policy", tiny_path, "--baseline", "reference", "--judge",
                 "rule:shorter", "--task", "quickstart", "--n", "4", "--max-new-tokens", "40"]) == 0
    out = capsys.readouterr().out
    assert "win rate on quickstart (eval)" in out
    [stored] = Store(home).results("winrate")
    res = stored["result"]
    assert res["n"] == 4 and res["sampling"]["temperature"] == 0.0
    # every win rate comes with n, wins/ties/losses, its CI and method, a verdict and the judge's card
    for col in ("n", "w/t/l", "win_rate", "ci95", "lc_win_rate (ci95)"):
        assert col in out
    assert f"{res['wins']}/{res['ties']}/{res['losses']}" in out
    assert "95% percentile bootstrap over prompts" in out and res["ci_method"] == "95% percentile bootstrap over prompts"
    verdict = verdict_line(res, "reference")
    assert f"{res['policy']}: {verdict}" in out and "at n=4 (CI [" in verdict
    assert "\nCARD[rule:shorter]\n" in out and res["judge_card_line"] == "CARD[rule:shorter]"


def test_run_policy_vs_initial(tmp_path, tiny_path, capsys):
    home = tmp_path / "home"
    over = [f"model.name={tiny_path}", "train.steps=1", "train.batch_size=2", "train.checkpoint_every=0",
            "sampling.max_new_tokens=8", "train.lr=1e-2"]
    assert main(["--home", str(home), "train", str(REPO / "configs" / "oaif_quickstart_rule_shorter.yaml"), *over,
                 "--run-id", "r"]) == 0
    capsys.readouterr()
    assert main(["--home", str(home), "--format", "json", "eval", "--policy", "r", "--baseline", "initial",
                 "--judge", "rule:longer", "--n", "3", "--max-new-tokens", "8"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["policy"] == "r" and res["baseline"] == f"initial:{tiny_path}" and res["task"] == "quickstart"
    assert res["n"] + res["n_unparsed"] == 3
    [stored] = Store(home).results("winrate")
    assert stored["run_id"] == "r"


def test_bad_inputs_are_clear(tmp_path, capsys):
    home = tmp_path / "home"
    rows = load_task("quickstart").prompts("eval")[:2]
    partial = write_outputs(tmp_path / "partial.jsonl", rows[:1], lambda r: "x")
    assert main(["--home", str(home), "eval", "--policy", str(partial), "--baseline", "reference",
                 "--judge", "rule:longer", "--task", "quickstart", "--n", "2"]) == 2
    assert f"{partial}: no output for prompt" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "response": "b"}\n{"prompt": "a"}\n')
    assert main(["--home", str(home), "eval", "--policy", str(bad), "--baseline", "reference",
                 "--judge", "rule:longer", "--task", "quickstart"]) == 2
    assert f"{bad}: line 2: field 'response'" in capsys.readouterr().err
    assert main(["--home", str(home), "eval", "--policy", str(bad), "--baseline", "initial",
                 "--judge", "rule:longer", "--task", "quickstart"]) == 2
    assert "--baseline initial: needs --policy to be a run id" in capsys.readouterr().err
    assert Store(home).results("winrate") == []  # nothing half-stored


def _three_policies(tmp_path):
    """long: the reference twice; short: "Yes."; mixed: long on the first 3 prompts, short on the rest."""
    rows = load_task("quickstart").prompts("eval")[:6]
    long_ = lambda r: r["reference"] + " " + r["reference"]  # noqa: E731
    files = [write_outputs(tmp_path / "long.jsonl", rows, long_),
             write_outputs(tmp_path / "short.jsonl", rows, lambda r: "Yes."),
             write_outputs(tmp_path / "mixed.jsonl", rows, lambda r: long_(r) if rows.index(r) < 3 else "Yes.")]
    return rows, [str(f) for f in files]


def test_head_to_head_every_pair_once_each_identical_outputs_not_judged(tmp_path, capsys, monkeypatch):
    from harness.pipelines import evaluate as ev

    _, files = _three_policies(tmp_path)
    answered = []
    real = ev.policy_outputs
    monkeypatch.setattr(ev, "policy_outputs", lambda spec, *a, **k: answered.append(spec.name) or real(spec, *a, **k))
    home = tmp_path / "home"
    assert main(["--home", str(home), "--format", "json", "eval", "--head-to-head", *files, "--judge", "rule:longer",
                 "--task", "quickstart", "--n", "6"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert sorted(answered) == ["outputs:long", "outputs:mixed", "outputs:short"]  # each policy answers once
    got = {(r["policy"], r["baseline"]): r for r in res["rows"]}
    assert list(got) == [("outputs:long", "outputs:short"), ("outputs:long", "outputs:mixed"),
                         ("outputs:short", "outputs:mixed")]
    ls, lm, sm = got.values()
    assert (ls["wins"], ls["ties"], ls["losses"], ls["n_identical"], ls["win_rate"]) == (6, 0, 0, 0, 1.0)
    # identical answers on 3 prompts: ties, counted, and never shown to the judge
    assert (lm["wins"], lm["ties"], lm["losses"], lm["n_identical"], lm["win_rate"]) == (3, 3, 0, 3, 0.75)
    assert (sm["wins"], sm["ties"], sm["losses"], sm["n_identical"], sm["win_rate"]) == (0, 3, 3, 3, 0.25)
    assert all(r["n"] == 6 and r["ci_low"] <= r["win_rate"] <= r["ci_high"] for r in res["rows"])
    assert ls["verdict"] == "outputs:long: better than outputs:short at n=6 (CI [1.00, 1.00] excludes 0.5)"
    store = Store(home)
    labels = store.labels_df()
    assert len(labels) == 2 * (6 + 3 + 3)  # both orders of the 12 pairs with different answers only
    assert not (labels["response_a"] == labels["response_b"]).any()
    [stored] = store.results("head_to_head")
    assert stored["result"]["policies"] == ["outputs:long", "outputs:short", "outputs:mixed"]
    assert [r["n_identical"] for r in stored["result"]["rows"]] == [0, 3, 3]
    assert stored["result"]["judge_card_line"] == "CARD[rule:longer]"


def test_head_to_head_table_and_errors(tmp_path, capsys):
    _, files = _three_policies(tmp_path)
    home = tmp_path / "home"
    assert main(["--home", str(home), "eval", "--head-to-head", *files[:2], "--judge", "rule:longer",
                 "--task", "quickstart", "--n", "6"]) == 0
    out = capsys.readouterr().out
    assert "head-to-head on quickstart (eval)" in out and "identical" in out and "6/0/0" in out
    assert "outputs:long: better than outputs:short at n=6" in out and "CARD[rule:longer]" in out
    assert main(["--home", str(home), "eval", "--head-to-head", files[0], "--judge", "rule:longer"]) == 2
    assert "needs at least two different policies" in capsys.readouterr().err
    assert main(["--home", str(home), "eval", "--group", "nothing-here", "--judge", "rule:longer"]) == 2
    assert "--group nothing-here: needs at least two finished policy runs" in capsys.readouterr().err
    assert main(["--home", str(home), "eval", "--judge", "rule:longer"]) == 2
    assert "give exactly one of --policy, --head-to-head or --group" in capsys.readouterr().err
    assert main(["--home", str(home), "eval", "--policy", files[0], "--group", "g", "--judge", "rule:longer"]) == 2
    assert "(got --policy, --group)" in capsys.readouterr().err


def test_identical_answers_are_ties_not_sent_to_the_judge(tmp_path, capsys):
    rows = load_task("quickstart").prompts("eval")[:4]
    # the reference answer itself on the first two prompts, a longer one on the others
    outputs = write_outputs(tmp_path / "pol.jsonl", rows,
                            lambda r: r["reference"] if rows.index(r) < 2 else r["reference"] + " more")
    home = tmp_path / "home"
    assert main(["--home", str(home), "--format", "json", "eval", "--policy", str(outputs), "--baseline", "reference",
                 "--judge", "rule:longer", "--task", "quickstart", "--n", "4"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert (res["n"], res["wins"], res["ties"], res["losses"], res["n_identical"]) == (4, 2, 2, 0, 2)
    assert len(Store(home).labels_df()) == 4  # 2 pairs x 2 orders; the identical ones were not judged
