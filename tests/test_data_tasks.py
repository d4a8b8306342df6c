"""Preference data loading (local files through `datasets`) and task definitions."""
from __future__ import annotations

import gzip
import json

import pytest

from harness.config import ConfigError
from harness.data import DataError, load_preferences, load_prompts, parse_hh
from harness.tasks import list_tasks, load_task


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_parse_hh_transcript():
    text = "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: How are you?\n\nAssistant: Fine, thanks."
    assert parse_hh(text) == [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"},
                              {"role": "user", "content": "How are you?"},
                              {"role": "assistant", "content": "Fine, thanks."}]


def test_hh_file_from_shared_data(shared_data):
    path = shared_data / "hh_rlhf_harmless_base_test" / "test.jsonl.gz"
    with pytest.warns(UserWarning, match="skipped 5 HH record"):
        recs = load_preferences(str(path))
    assert len(recs) == 2312 - 5
    with gzip.open(path, "rt") as f:
        first = json.loads(f.readline())
    r = recs[0]
    assert r["id"] == 0 and r["p"] is None
    assert isinstance(r["prompt"], list) and r["prompt"][-1]["role"] == "user"
    # the prompt is the shared conversation; the responses are the final assistant turns
    assert first["chosen"].endswith(r["chosen"]) and first["rejected"].endswith(r["rejected"])
    assert r["prompt"][0]["content"] in first["chosen"] and r["chosen"] != r["rejected"]


def test_pairs_strings_messages_and_implicit_prompt(tmp_path):
    rows = [
        {"prompt": "Say hi.", "chosen": "Hi!", "rejected": "No.", "p": 0.8},
        {"prompt": [{"role": "user", "content": "Say hi."}],
         "chosen": [{"role": "assistant", "content": "Hello!"}], "rejected": [{"role": "assistant", "content": "Go away."}]},
        {"chosen": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
         "rejected": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}]},
    ]
    recs = load_preferences(str(write_jsonl(tmp_path / "d.jsonl", rows)))
    assert [r["chosen"] for r in recs] == ["Hi!", "Hello!", "4"]
    assert recs[0]["p"] == 0.8 and recs[1]["p"] is None
    assert recs[1]["prompt"] == [{"role": "user", "content": "Say hi."}]
    assert recs[2]["prompt"] == [{"role": "user", "content": "2+2?"}] and recs[2]["rejected"] == "5"


def test_csv_parquet_and_json_array(tmp_path):
    import pandas as pd

    df = pd.DataFrame([{"prompt": "a?", "chosen": "yes", "rejected": "no"},
                       {"prompt": "b?", "chosen": "sure", "rejected": "never"}])
    df.to_csv(tmp_path / "d.csv", index=False)
    df.to_parquet(tmp_path / "d.parquet")
    (tmp_path / "d.json").write_text(json.dumps(df.to_dict("records")))
    for name in ("d.csv", "d.parquet", "d.json"):
        recs = load_preferences(str(tmp_path / name))
        assert [(r["prompt"], r["chosen"], r["rejected"]) for r in recs] == [("a?", "yes", "no"), ("b?", "sure", "never")]


@pytest.mark.parametrize("row, field", [
    ({"prompt": "x", "rejected": "b"}, "'chosen' is missing"),
    ({"prompt": "x", "chosen": 3, "rejected": "b"}, "field 'chosen'"),
    ({"prompt": "x", "chosen": "a", "rejected": "b", "p": 1.5}, "field 'p'"),
    ({"prompt": "", "chosen": "a", "rejected": "b"}, "field 'prompt' is empty"),
])
def test_bad_record_names_file_line_and_field(tmp_path, row, field):
    good = {"prompt": "ok", "chosen": "a", "rejected": "b"}
    path = write_jsonl(tmp_path / "bad.jsonl", [good, good, row])
    with pytest.raises(DataError) as e:
        load_preferences(str(path))
    msg = str(e.value)
    assert str(path) in msg and "line 3" in msg and field in msg


def test_bad_json_line_and_bad_hh(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": oops}\n')
    with pytest.raises(DataError, match=r"broken.jsonl: line 2: invalid JSON"):
        load_preferences(str(path))
    path = write_jsonl(tmp_path / "hh.jsonl", [{"chosen": "\n\nHuman: hi\n\nAssistant: yo",
                                                 "rejected": "\n\nHuman: hi"}])
    with pytest.raises(DataError, match=r"hh.jsonl: line 1: field 'rejected': not an HH transcript"):
        load_preferences(str(path))
    with pytest.raises(DataError, match="not found"):
        load_preferences(str(tmp_path / "missing.jsonl"))


def test_quickstart_task():
    assert {"quickstart", "hh_harmless"} <= set(list_tasks())
    t = load_task("quickstart")
    train, evals = t.prompts("train"), t.prompts("eval")
    assert 50 <= len(train) + len(evals) <= 100 and len(evals) >= 10
    assert all(p["reference"] for p in train + evals)
    assert not {p["id"] for p in train} & {p["id"] for p in evals}
    assert "Which response" in t.rubric
    with pytest.raises(DataError, match="no preference data"):
        t.preference_data()


def test_hh_harmless_local_override_splits(shared_data):
    t = load_task("hh_harmless")
    path = str(shared_data / "hh_rlhf_harmless_base_test" / "test.jsonl.gz")
    with pytest.warns(UserWarning):
        train, evals = t.preference_splits(path=path, max_train=64, max_eval=32)
    assert len(train) == 64 and len(evals) == 32
    assert not {r["id"] for r in train} & {r["id"] for r in evals}
    with pytest.warns(UserWarning):
        train2, evals2 = t.preference_splits(path=path, max_train=64, max_eval=32)
    assert [r["id"] for r in evals2] == [r["id"] for r in evals]  # the held-out set is fixed


def test_task_yaml_validation(tmp_path):
    d = tmp_path / "mytask"
    d.mkdir()
    (d / "prompts.jsonl").write_text('{"prompt": "hi"}\n')
    (d / "task.yaml").write_text("name: mytask\ndata:\n  prompts: prompts.jsonl\n  shuffle: true\n")
    with pytest.raises(ConfigError) as e:
        load_task(str(d))
    assert "task.yaml" in str(e.value) and "data.shuffle" in str(e.value)
    (d / "task.yaml").write_text("name: mytask\ndata:\n  prompts: prompts.jsonl\nrubric: 3\n")
    with pytest.raises(ConfigError, match="rubric: expected str"):
        load_task(str(d))
    (d / "task.yaml").write_text("name: mytask\ndata:\n  prompts: prompts.jsonl\n")
    (d / "prompts.jsonl").write_text('{"prompt": "hi"}\n{"prompt": "x", "split": "test"}\n')
    with pytest.raises(DataError, match=r"prompts.jsonl: line 2: field 'split'"):
        load_prompts(d / "prompts.jsonl")


def test_tasks_command(tmp_path, capsys):
    from harness.cli import main

    assert main(["--format", "json", "tasks", "validate"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["task"] for r in rows} >= {"quickstart", "hh_harmless"} and all(r["status"] == "ok" for r in rows)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "task.yaml").write_text("name: bad\nrubrik: typo\ndata:\n  hub: x/y\n")
    assert main(["tasks", "validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "unknown key(s)" in err and "rubrik" in err
