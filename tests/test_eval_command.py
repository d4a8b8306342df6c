"""`harness eval`: policy vs baseline on a task's eval prompts, both orders, stored as a `winrate`
result with its pairs and labels. Policies here: an outputs file, a model dir, a run's checkpoint;
baselines: the task's reference answers, a model, the run's initial policy."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.store import Store
from harness.tasks import load_task
from tiny_llama import make_tiny_llama

REPO = Path(__file__).resolve().parents[1]


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
    # length-controlled: the judge's preference is all length, so the length coefficient is large
    assert res["length_coef"] > 1.0 and 0.0 < res["lc_win_rate"] < 1.0


def test_model_vs_model_and_table_output(tmp_path, tiny_path, capsys):
    home = tmp_path / "home"
    assert main(["--home", str(home), "eval", "--policy", tiny_path, "--baseline", "reference", "--judge",
                 "rule:shorter", "--task", "quickstart", "--n", "4", "--max-new-tokens", "40"]) == 0
    out = capsys.readouterr().out
    assert "win rate on quickstart (eval)" in out and "length-controlled 95% CI" in out
    [stored] = Store(home).results("winrate")
    assert stored["result"]["n"] == 4 and stored["result"]["sampling"]["temperature"] == 0.0


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
