"""The shipped verifiable task (tasks/verifiable/): it validates, its split keeps bases and held-out
constraint types apart, every reference scores full marks, and its builder reproduces the file."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from harness.tasks import load_task, validate_task
from harness.verifiable import CONSTRAINTS, gold_score

TASK = Path(__file__).resolve().parents[1] / "tasks" / "verifiable"
HELD_OUT = {"start_with", "quoted"}


def rows():
    return [json.loads(line) for line in (TASK / "prompts.jsonl").read_text().splitlines()]


def test_task_validates_with_its_counts():
    v = validate_task("verifiable")
    assert v["prompts"] == 320 and v["eval_prompts"] == 80 and v["with_reference"] == 320
    assert set(v["held_out_types"].split(",")) == HELD_OUT
    assert load_task("verifiable").verifiable


def test_split_sizes_and_groups():
    c = Counter((r["split"], r["group"]) for r in rows())
    assert c[("train", "seen")] >= 216 and c[("train", "held_out")] == 0
    assert c[("eval", "seen")] >= 48 and c[("eval", "held_out")] >= 24


def test_bases_and_held_out_types_are_kept_apart():
    rs = rows()
    train_bases = {r["base"] for r in rs if r["split"] == "train"}
    assert not train_bases & {r["base"] for r in rs if r["split"] == "eval"}
    train_types = {c["type"] for r in rs if r["split"] == "train" for c in r["constraints"]}
    assert not train_types & HELD_OUT
    for r in rs:
        types = {c["type"] for c in r["constraints"]}
        assert (r["group"] == "held_out") == bool(types & HELD_OUT), r["id"]
    # together as well as apart: some held-out rows pair a new type with a trained one
    assert any(len(r["constraints"]) == 2 for r in rs if r["group"] == "held_out")
    assert {c["type"] for r in rs for c in r["constraints"]} == set(CONSTRAINTS)


def test_every_reference_scores_full_marks_and_prompts_are_unique():
    rs = rows()
    assert all(gold_score(r["reference"], r["constraints"], r["topic"]) == 2.0 for r in rs)
    assert len({r["prompt"] for r in rs}) == len(rs) and len({r["id"] for r in rs}) == len(rs)
    assert all(1 <= len(r["constraints"]) <= 2 for r in rs)


def test_builder_reproduces_the_file(tmp_path):
    out = tmp_path / "prompts.jsonl"
    subprocess.run([sys.executable, str(TASK / "build.py"), str(out)], check=True, capture_output=True)
    assert out.read_bytes() == (TASK / "prompts.jsonl").read_bytes()
