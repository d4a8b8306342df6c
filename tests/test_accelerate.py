"""`harness train` under `accelerate launch --cpu --num_processes 2` (gloo) matches one process with the
same global batch; gradient accumulation 1x8 equals 8x1. Tiny random Llama with the SmolLM2 tokenizer."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tiny import make_tiny_model

REPO = Path(__file__).resolve().parents[1]
PAIRS = [{"prompt": f"Say the number {i} in words.", "chosen": f"Number {i}.",
          "rejected": f"I refuse to talk about numbers like {i}, ask me something else."} for i in range(16)]


@pytest.fixture(scope="module")
def setup(embedded_path, tmp_path_factory):
    root = tmp_path_factory.mktemp("accel")
    model = make_tiny_model(embedded_path, root / "tiny")
    data = root / "pairs.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    return root, model, data


def overrides(model, data, *extra):
    return [f"model.name={model}", "data.task=quickstart", f"data.path={data}", "data.max_prompt_tokens=24",
            "data.max_response_tokens=16", "data.eval_fraction=0.2", "train.steps=3", "train.batch_size=8",
            "train.lr=0.002", "train.warmup_steps=0", "train.checkpoint_every=0", "train.schedule=constant", *extra]


def weights(home: Path, run_id: str):
    from safetensors.torch import load_file

    from harness.store import Store

    return load_file(str(Store(home).latest_checkpoint(run_id) / "model.safetensors"))


def max_diff(a, b) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def moved(model_dir: Path, trained) -> float:
    from safetensors.torch import load_file

    init = load_file(str(model_dir / "model.safetensors"))
    return max((trained[k] - init[k]).abs().max().item() for k in init if k in trained)


def run_inprocess(home, cfg, run_id, args):
    from harness.cli import main

    assert main(["--home", str(home), "train", str(cfg), *args, "--run-id", run_id]) == 0


@pytest.mark.slow
def test_two_processes_match_one(setup, tmp_path):
    root, model, data = setup
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    if accelerate is None:
        pytest.skip("accelerate CLI not installed")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("algo: dpo\n")
    home = tmp_path / "home"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "ACCELERATE_USE_CPU": "1"}
    proc = subprocess.run([accelerate, "launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
                           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "harness.cli", "--home", str(home),
                           "train", str(cfg), *overrides(model, data), "--run-id", "two"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_inprocess(home, cfg, "one", overrides(model, data))

    from harness.store import Store

    store = Store(home)
    assert {r["run_id"] for r in store.list_runs()} == {"one", "two"}  # one run for both processes
    two, one = store.metrics(["two"]), store.metrics(["one"])
    assert two["loss"].tolist() == pytest.approx(one["loss"].tolist(), abs=1e-5)
    assert two["reward_acc"].tolist() == pytest.approx(one["reward_acc"].tolist(), abs=1e-6)
    ev_two, ev_one = store.metrics(["two"], split="eval"), store.metrics(["one"], split="eval")
    assert ev_two["loss"].tolist() == pytest.approx(ev_one["loss"].tolist(), abs=1e-5)  # 3 pairs over 2 processes
    a, b = weights(home, "one"), weights(home, "two")
    assert moved(model, a) > 1e-3  # the runs trained, so agreement is not trivial
    assert max_diff(a, b) < 2e-5


@pytest.mark.slow
def test_grad_accumulation_1x8_equals_8x1(setup, tmp_path):
    root, model, data = setup
    cfg = tmp_path / "c.yaml"
    cfg.write_text("algo: dpo\n")
    home = tmp_path / "home"
    run_inprocess(home, cfg, "acc1", overrides(model, data, "train.grad_accum=1"))
    run_inprocess(home, cfg, "acc8", overrides(model, data, "train.grad_accum=8"))
    from harness.store import Store

    store = Store(home)
    m1, m8 = store.metrics(["acc1"]), store.metrics(["acc8"])
    assert m1["loss"].tolist() == pytest.approx(m8["loss"].tolist(), abs=1e-5)
    assert m1["n_tokens"].tolist() == m8["n_tokens"].tolist()  # counts add up over micro-batches
    a, b = weights(home, "acc1"), weights(home, "acc8")
    assert moved(model, a) > 1e-3  # the runs trained, so agreement is not trivial
    assert max_diff(a, b) < 2e-5
