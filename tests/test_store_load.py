"""The shared store under load (bench/store_load.py, short): 20 raters label at once for a few seconds
while a real training run (a tiny model, OAIF with a rule annotator) and a PandaLM import write to the
same PostgreSQL store: every acknowledged label is stored once, none is lost or doubled, no write
fails, no overlap pair gets more raters than configured, and the import and the training land whole.
The 60-second figures (p95 write latency) come from the bench, not from here: tests never time."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tiny_llama import make_tiny_llama

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
pytestmark = pytest.mark.timeout(600)


def test_twenty_raters_a_training_run_and_an_import_lose_nothing(tmp_path, pg_url, shared_data, embedded_path):
    from store_load import run_load

    tiny = make_tiny_llama(tmp_path / "tiny", embedded_path)
    train = [str(REPO / "configs" / "oaif_quickstart_rule_shorter.yaml"), f"model.name={tiny}", "train.steps=3",
             "train.batch_size=4", "train.checkpoint_every=0", "sampling.max_new_tokens=8", "judge.validity_pairs=4"]
    out = run_load(pg_url, tmp_path / "home", raters=20, seconds=8, train=train,
                   import_path=shared_data / "pandalm_testset", pool_path=shared_data / "llmbar",
                   wait_for_training=True)
    assert out["backend"] == "postgresql" and out["labels_acknowledged"] > 20
    assert out["lost"] == 0 and out["duplicated"] == 0 and out["write_errors"] == 0
    assert out["labels_stored"] == out["labels_acknowledged"]
    assert out["overlap_pairs_over_raters"] == 0
    assert out["import"] == {"records": 999, "labels": 4995, "new_labels": 4995}
    assert out["training_rc"] == 0, out["training_stderr_tail"]
    assert out["training_steps"] == 3 and out["training_labels"] == 12  # 4 pairs a step, one order
