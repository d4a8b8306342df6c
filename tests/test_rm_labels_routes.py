"""`reward_model.labels` on the data.path route (issue #12 item 3): a pairs file whose `p` is 0.52
(an AI annotator's near-coin-flip probability, as in the demo's RLAIF arm) trains the BT loss on
hard targets (chosen = 1) unless `labels: soft` asks for the probabilities."""
from __future__ import annotations

import json

import pytest

from harness.algorithms.reward_model import task_split
from harness.config import load_config


def pairs_file(path, p=0.52, n=20):
    rows = [{"prompt": f"Question {i}?", "chosen": f"A helpful answer {i}.", "rejected": f"No {i}.", "p": p}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def cfg_for(path, labels):
    return load_config(None, ["algo=reward_model", "data.task=quickstart", f"data.path={path}",
                              "data.eval_fraction=0.25", f"reward_model.labels={labels}"])


def test_data_path_hard_labels_ignore_p(tmp_path):
    train, held, info = task_split(cfg_for(pairs_file(tmp_path / "p.jsonl"), "hard"))
    assert len(train) + len(held) == 20 and info["labels"] == "hard"
    # the old code trained on p = 0.52 here: a BT target that carries almost no signal
    assert {e["p"] for e in train + held} == {1.0}


def test_data_path_soft_labels_read_p(tmp_path):
    train, held, _ = task_split(cfg_for(pairs_file(tmp_path / "p.jsonl"), "soft"))
    assert [e["p"] for e in train + held] == pytest.approx([0.52] * 20)


def test_data_path_soft_labels_default_to_one_and_reject_non_probabilities(tmp_path):
    path = tmp_path / "nop.jsonl"
    path.write_text(json.dumps({"prompt": "q?", "chosen": "a", "rejected": "b"}) + "\n" +
                    json.dumps({"prompt": "r?", "chosen": "c", "rejected": "d"}) + "\n")
    train, held, _ = task_split(cfg_for(path, "soft"))
    assert {e["p"] for e in train + held} == {1.0}
    with pytest.raises(ValueError, match="probability in"):
        task_split(cfg_for(pairs_file(tmp_path / "bad.jsonl", p=1.5), "soft"))
