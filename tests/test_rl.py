"""RLHF through the shared trainer core on a tiny random Llama (SmolLM2 tokenizer): a short RLOO run
against a trained reward model (rm:<run-id>), a short PPO run, and resume after a real kill -9."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.store import Store

from tiny_llama import make_tiny_llama

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, model_cache) -> str:
    from harness.models import resolve_model

    return str(make_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama", resolve_model("smollm2-135m-instruct")))


def overrides(tiny, **extra) -> list[str]:
    base = {"model.name": tiny, "data.max_prompt_tokens": 32, "sampling.max_new_tokens": 12,
            "train.batch_size": 2, "train.lr": 1e-3, "train.checkpoint_every": 2}
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def finite(df, col) -> bool:
    return df[col].map(lambda v: isinstance(v, (int, float)) and math.isfinite(v)).all()


def test_rloo_with_reward_model_judge(tmp_path, tiny):
    from judges.registry import load_judge

    home = tmp_path / "home"
    store = Store(home)
    # a reward model run to score with: two BT steps on a handful of stored human labels
    from harness.records import Annotator, Label, Pair

    ann = Annotator("human", "test:crowd", "v1")
    pairs = [Pair(prompt=f"q{i}", response_a="Sure, glad to help.", response_b="no.", dataset="t") for i in range(8)]
    store.add_labels([Label(pair_id=p.pair_id, annotator=ann, verdict="A") for p in pairs], pairs)
    assert main(["--home", str(home), "train", str(REPO / "configs/rm_hh_cpu.yaml"),
                 f"model.name={tiny}", "reward_model.annotators=[test:crowd]", "reward_model.dataset=t",
                 "train.steps=2", "train.batch_size=4", "data.max_train=null", "data.max_eval=null",
                 "--run-id", "rm"]) == 0

    steps = 4
    assert main(["--home", str(home), "train", str(REPO / "configs/rloo_quickstart_cpu.yaml"),
                 "rl.reward_model=rm:rm", f"train.steps={steps}", *overrides(tiny), "--run-id", "rloo"]) == 0
    m = store.metrics(["rloo"])
    assert list(m["step"]) == list(range(1, steps + 1))
    for col in ("loss", "reward_mean", "reward_std", "kl_nats_per_seq", "reward_logratio_per_seq", "entropy",
                "response_len", "clip_frac", "grad_norm"):
        assert finite(m, col), col
    # one KL column (k3 per token, summed, on the rollout): never negative, 0 while the policy is the reference
    assert not {"kl", "kl_k3", "sample/kl_rollout"} & set(m.columns)
    assert (m["kl_nats_per_seq"] >= 0).all() and m["kl_nats_per_seq"].iloc[0] == pytest.approx(0.0, abs=1e-4)
    assert m["kl_nats_per_seq"].iloc[-1] > 0  # the policy has moved
    # the k1 log-ratio the reward is penalised by: about 0 at step 1, never far below
    assert m["reward_logratio_per_seq"].iloc[0] == pytest.approx(0.0, abs=1e-4)
    assert (m["reward_logratio_per_seq"] > -0.1).all()
    assert m["clip_frac"].between(0, 1).all() and (m["entropy"] > 0).all()
    assert m["response_len"].between(1, 12).all() and (m["reward_std"] >= 0).all()
    # every sample is stored with the reward the judge gives it
    s = Store(home).samples_df("rloo")
    assert len(s) == steps * 2 * 2  # steps x prompts x k
    judge = load_judge("rm:rm", home, "cpu")
    some = s.head(4)
    want = judge.score(list(some["prompt"]), list(some["response"]))
    assert list(some["reward"]) == pytest.approx(want, abs=1e-4)
    assert Store(home).get_run("rloo")["status"] == "done"


def test_ppo_short_run_sane(tmp_path, tiny):
    home = tmp_path / "home"
    steps = 4
    assert main(["--home", str(home), "train", str(REPO / "configs/ppo_quickstart_cpu.yaml"),
                 "rl.reward_model=rule:shorter", f"train.steps={steps}", "rl.ppo_epochs=2", *overrides(tiny),
                 "--run-id", "ppo"]) == 0
    store = Store(home)
    m = store.metrics(["ppo"])
    assert list(m["step"]) == list(range(1, steps + 1))
    for col in ("loss", "policy_loss", "value_loss", "kl_nats_per_seq", "entropy", "clip_frac", "value_clip_frac",
                "reward_mean", "response_len"):
        assert finite(m, col), col
    assert m["clip_frac"].between(0, 1).all() and m["value_clip_frac"].between(0, 1).all()
    assert (m["kl_nats_per_seq"] >= 0).all() and (m["reward_logratio_per_seq"] > -0.1).all()
    # a reused rollout reports its own (rollout-time) KL again
    by_step = m.set_index("step")
    assert by_step.loc[2, "kl_nats_per_seq"] == by_step.loc[1, "kl_nats_per_seq"]
    # ppo_epochs=2: steps 2 and 4 train again on the rollouts of steps 1 and 3 (no new samples)
    assert sorted(store.samples_df("ppo")["step"].unique()) == [1, 3]
    assert m.set_index("step").loc[[2, 4], "source/rollout_reused"].tolist() == [1.0, 1.0]
    # the second pass sees a moved policy: the ratio is no longer exactly 1
    assert (m.set_index("step").loc[[2, 4], "approx_kl_old"] > 0).all()
    # the value head is checkpointed with the policy
    ckpt = store.latest_checkpoint("ppo")
    assert (ckpt / "extras.safetensors").exists()


def _train_cmd(home, run_id, tiny, steps, resume=False):
    cmd = [sys.executable, "-m", "harness.cli", "--home", str(home), "train", str(REPO / "configs/rloo_quickstart_cpu.yaml"),
           "rl.reward_model=rule:shorter", f"train.steps={steps}", *overrides(tiny)]
    return cmd + (["resume=true"] if resume else []) + ["--run-id", run_id]


def test_resume_after_kill9(tmp_path, tiny):
    """A run killed with SIGKILL after its step-2 checkpoint resumes and samples exactly what an
    uninterrupted run samples: same RNG, same data position, same weights."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    home = tmp_path / "home"
    steps = 4
    subprocess.run(_train_cmd(home, "straight", tiny, steps), check=True, env=env, cwd=REPO,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    proc = subprocess.Popen(_train_cmd(home, "killed", tiny, steps), env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = Store(home)
    ckpt2 = home / "killed" / "checkpoints" / "step-2" / "COMPLETE"
    deadline = time.time() + 300
    while not ckpt2.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert ckpt2.exists(), "no step-2 checkpoint appeared"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert store.get_run("killed")["status"] == "running"
    subprocess.run(_train_cmd(home, "killed", tiny, steps, resume=True), check=True, env=env, cwd=REPO,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    assert store.get_run("killed")["status"] == "done"
    m = store.metrics(["killed"])
    assert list(m["step"]) == list(range(1, steps + 1))  # every step once, none lost or doubled
    a, b = store.samples_df("straight"), store.samples_df("killed")
    assert len(a) == len(b) == steps * 2 * 2
    assert list(a["response"]) == list(b["response"])  # steps 3-4 re-sampled exactly as without the kill
    assert list(a["reward"]) == pytest.approx(list(b["reward"]))
    ms = store.metrics(["straight"])
    assert list(m["loss"]) == pytest.approx(list(ms["loss"]), abs=1e-5)
