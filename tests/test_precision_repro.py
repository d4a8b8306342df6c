"""The same machine and seed reproduce a run exactly with what `auto` picks where bf16 is native: bf16
autocast over fp32 master weights (train.mixed_precision) and a bf16 sampling copy synced every step
(sampling.dtype). Asked explicitly here so the bf16 path runs on any CPU (emulated on AVX2: slow, but
the model is tiny). Each run is its own process: accelerate fixes the mixed-precision mode once per
process, and a second process is what "run it again" means."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tiny_llama import make_tiny_llama

REPO = Path(__file__).resolve().parents[1]
RULE_CONFIG = REPO / "configs" / "oaif_quickstart_rule_shorter.yaml"


def train_once(home: Path, tiny: str) -> Path:
    over = {"model.name": tiny, "train.steps": 3, "train.batch_size": 4, "train.lr": 1e-3, "train.checkpoint_every": 3,
            "sampling.max_new_tokens": 12, "train.mixed_precision": "bf16", "sampling.dtype": "bf16", "train.seed": 7}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("ACCELERATE_MIXED_PRECISION", None)
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "--home", str(home), "train", str(RULE_CONFIG),
                           *[f"{k}={v}" for k, v in over.items()], "--run-id", "r"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "mixed precision bf16" in proc.stderr and "sampling bf16" in proc.stderr  # the choice is printed
    return home / "r"


@pytest.mark.slow
def test_same_seed_same_machine_identical_weights_with_bf16_autocast_and_sampling_copy(tmp_path, embedded_path):
    from safetensors.torch import load_file

    tiny = make_tiny_llama(tmp_path / "tiny", embedded_path)
    runs = [train_once(tmp_path / f"home{i}", tiny) for i in (1, 2)]
    weights = [load_file(str(r / "checkpoints" / "step-3" / "model.safetensors")) for r in runs]
    assert weights[0].keys() == weights[1].keys() and weights[0]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0]), "same seed, different weights"
    assert all(w.dtype == torch.float32 for w in weights[0].values())  # master weights stay fp32
    from transformers import AutoModelForCausalLM

    before = AutoModelForCausalLM.from_pretrained(tiny).state_dict()
    assert any(not torch.equal(weights[0][k], before[k]) for k in weights[0]), "the run did not train"
    env = json.loads((runs[0] / "env.json").read_text())
    assert env["dtypes"]["mixed_precision"]["mode"] == "bf16" and env["dtypes"]["sampling"]["dtype"] == "bf16"
