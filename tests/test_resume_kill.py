"""A real kill -9 of a `harness train` process mid-run, then resume=true: the final weights equal
those of an uninterrupted run. Tiny random Llama (SmolLM2 tokenizer) on real HH-RLHF pairs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tiny import make_tiny_model

REPO = Path(__file__).resolve().parents[1]


def write_config(tmp: Path, model_dir: Path, shared_data: Path, steps: int) -> Path:
    cfg = {
        "algo": "dpo", "name": "kill-test",
        "model": {"name": str(model_dir)},
        "data": {"task": "hh_harmless", "path": str(shared_data / "hh_rlhf_harmless_base_test" / "test.jsonl.gz"),
                 "max_train": 12, "max_eval": 4, "max_prompt_tokens": 24, "max_response_tokens": 12},
        "loss": {"kind": "dpo", "beta": 0.1},
        "train": {"steps": steps, "batch_size": 4, "grad_accum": 2, "lr": 1e-3, "warmup_steps": 2,
                  "checkpoint_every": 3, "keep_checkpoints": 2, "seed": 3},
    }
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def harness(home: Path, *args: str, **kw):
    env = {**os.environ, "HARNESS_HOME": str(home), "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "harness.cli", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def final_weights(home: Path, run_id: str, step: int):
    from safetensors.torch import load_file

    return load_file(str(home / run_id / "checkpoints" / f"step-{step}" / "model.safetensors"))


def logged_steps(home: Path, run_id: str) -> list[int]:
    log = home / run_id / "log.jsonl"
    if not log.exists():
        return []
    steps = []
    for line in log.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line being written
            continue
        if rec.get("split") == "train":
            steps.append(rec["step"])
    return steps


@pytest.mark.slow
def test_kill9_then_resume_matches_uninterrupted(tmp_path, embedded_path, shared_data):
    model_dir = make_tiny_model(embedded_path, tmp_path / "tiny")
    steps = 10
    cfg = write_config(tmp_path, model_dir, shared_data, steps)
    home = tmp_path / "home"

    full = harness(home, "train", str(cfg), "--run-id", "full")
    out, _ = full.communicate(timeout=300)
    assert full.returncode == 0, out

    victim = harness(home, "train", str(cfg), "--run-id", "victim")
    deadline = time.time() + 300
    while time.time() < deadline and not any(s >= 5 for s in logged_steps(home, "victim")):
        assert victim.poll() is None, victim.stdout.read()
        time.sleep(0.02)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL

    from harness.store import Store

    store = Store(home)
    assert store.get_run("victim")["status"] == "running"  # killed, not finished
    ckpt = store.latest_checkpoint("victim")
    assert ckpt is not None and int(ckpt.name.split("-")[1]) < steps  # resumes from the middle

    resumed = harness(home, "train", str(cfg), "resume=true", "--run-id", "victim")
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert "resumed victim" in out
    assert store.get_run("victim")["status"] == "done"

    a, b = final_weights(home, "full", steps), final_weights(home, "victim", steps)
    assert a.keys() == b.keys()
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    assert diff <= 1e-6, diff
    # the weights moved (so equality is not trivial) and the logged losses agree step by step
    from safetensors.torch import load_file

    init = load_file(str(model_dir / "model.safetensors"))
    moved = max((a[k] - init[k]).abs().max().item() for k in init if k in a)
    assert moved > 1e-4
    m = store.metrics(["full", "victim"])
    by_run = {r: g.set_index("step")["loss"] for r, g in m.groupby("run_id")}
    assert list(by_run["victim"].index) == list(range(1, steps + 1))
    assert by_run["full"].values == pytest.approx(by_run["victim"].values, abs=1e-5)
