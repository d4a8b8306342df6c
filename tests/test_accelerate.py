"""The trainer under accelerate: gradient accumulation 1x8 equals 8x1; uneven and empty shards over
2 CPU processes (torchrun, gloo, DDP); the launch configs. 2 processes against 1 with doubled
accumulation, and kill -9 of one process: test_accelerate_resume.py. Tiny random Llama with the SmolLM2 tokenizer."""
from __future__ import annotations

import json
import os
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
            "train.lr=0.002", "train.warmup_steps=0", "train.checkpoint_every=0", "train.schedule=constant",
            # fp32: these tests compare batch layouts (1x8 vs 8x1, shards), which bf16 autocast (auto where
            # bf16 is native) rounds differently; the precision choice has its own tests (test_mixed_precision.py)
            "train.mixed_precision=no", *extra]


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


def launcher(processes: int) -> list[str]:
    """torchrun on CPU (gloo). Not `accelerate launch --cpu`: accelerate 1.x runs ONE process for
    --cpu whatever --num_processes says (simple_launcher), so a "2-process" run was a 1-process run."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]


def run_inprocess(home, cfg, run_id, args):
    from harness.cli import main

    assert main(["--home", str(home), "train", str(cfg), *args, "--run-id", run_id]) == 0


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


# -- uneven shards (issue #12 item 13) -------------------------------------------------------------
# A one-parameter model w with loss_e = -s_e * w (gradient -s_e): the global mean gradient over the
# step's examples is known by hand. A sharded source hands each process its own examples, as OAIF and
# RL do after skipping ties, so a process may get none.
DRIVER = r'''
import json, sys
import torch
from accelerate import Accelerator
from harness.config import load_config
from harness.store import Store
from harness.trainer import StepData, train

home, run_id, shards = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])  # shards[rank]: list of s_e


class Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self):  # objectives go through forward: under DDP that is what syncs the gradients
        return self.w


class Source:
    def next(self, step, model, ctx):
        mine = shards[ctx.rank] if ctx.world > 1 else [s for shard in shards for s in shard]
        return StepData([{"s": s} for s in mine], {}, sharded=True)

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def objective(model, examples, ctx):
    s = torch.tensor([e["s"] for e in examples])
    return (-s * model()).mean(), {"n_pairs": float(len(examples))}


acc = Accelerator(cpu=True)
cfg = load_config(None, ["train.steps=3", "train.lr=0.1", "train.warmup_steps=0", "train.schedule=constant",
                         "train.checkpoint_every=0", "train.max_grad_norm=100"])
store = Store(home)
if acc.is_main_process:
    store.create_run(cfg.to_dict(), cfg.algo, run_id=run_id)
acc.wait_for_everyone()
model = Toy()
train(cfg, store, run_id, model, None, Source(), objective, accelerator=acc)
if acc.is_main_process:
    print(f"WORLD={acc.num_processes} W=" + json.dumps(float(acc.unwrap_model(model).w)))
'''


def run_driver(tmp_path, shards, processes: int) -> tuple[float, object]:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    home = tmp_path / f"home{processes}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, str(script)] if processes == 1 else [*launcher(processes), str(script)]
    try:  # the old loop hung here when one process had no examples: fail, do not wait forever
        proc = subprocess.run(cmd + [str(home), "r", json.dumps(shards)], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{processes}-process run with shards {shards} did not finish (a process waits in a collective)")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"WORLD={processes} " in proc.stdout  # really that many processes
    w = json.loads(proc.stdout.split(" W=")[-1].split()[0])
    from harness.store import Store

    return w, Store(home).metrics(["r"])


@pytest.mark.slow
def test_process_with_no_examples_does_not_hang(tmp_path):
    # process 1's pairs were all skipped: it still joins the all-reduce, and the step is process 0's
    w2, m2 = run_driver(tmp_path, [[1.0, 1.0], []], processes=2)
    w1, m1 = run_driver(tmp_path, [[1.0, 1.0], []], processes=1)
    assert w2 == pytest.approx(w1, abs=1e-6) and w2 == pytest.approx(0.3, abs=1e-3)  # Adam: ~lr per step, 3 steps
    assert m2["n_pairs"].tolist() == [2.0, 2.0, 2.0]  # counts add up over processes


@pytest.mark.slow
def test_uneven_shards_weighted_by_counts(tmp_path):
    # 1 pair with s=+1 on process 0, 3 with s=-1 on process 1: the mean gradient over the 4 pairs is
    # -(1 - 3)/4 = +0.5, so w goes down; the mean of the two per-process means is 0 and w would not move
    w2, m2 = run_driver(tmp_path, [[1.0], [-1.0, -1.0, -1.0]], processes=2)
    w1, _ = run_driver(tmp_path, [[1.0], [-1.0, -1.0, -1.0]], processes=1)
    assert w2 == pytest.approx(w1, abs=1e-6) and w2 == pytest.approx(-0.3, abs=1e-3)
    assert m2["loss"].tolist()[0] == pytest.approx(0.0, abs=1e-7)  # w = 0 at step 1: pair-weighted mean loss
    assert m2["n_pairs"].tolist() == [4.0, 4.0, 4.0]


def test_shipped_accelerate_configs_are_valid_launch_configs():
    """configs/accelerate/*.yaml parse as accelerate launch configs (accelerate's own loader) with the
    distributed type and sharding their names promise."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    want = {"ddp": DistributedType.MULTI_GPU, "fsdp": DistributedType.FSDP, "zero2": DistributedType.DEEPSPEED,
            "zero3": DistributedType.DEEPSPEED}
    files = {p.stem: p for p in (REPO / "configs" / "accelerate").glob("*.yaml")}
    assert set(files) == set(want)
    for name, path in files.items():
        cfg = load_config_from_file(str(path))
        assert cfg.distributed_type == want[name] and cfg.num_processes == 2 and cfg.mixed_precision == "bf16", name
    assert load_config_from_file(str(files["fsdp"])).fsdp_config["fsdp_sharding_strategy"] == "FULL_SHARD"
    assert [load_config_from_file(str(files[z])).deepspeed_config["zero_stage"] for z in ("zero2", "zero3")] == [2, 3]


def test_one_accelerator_for_two_runs_saves_and_resumes_each_runs_own_state(tmp_path):
    """The trainer releases what it registered (models, hooks, the step source) when a run ends: a
    second run on the same Accelerator checkpoints its own weights and only its own source."""
    import torch
    from accelerate import Accelerator
    from safetensors.torch import load_file

    from harness.config import load_config
    from harness.store import Store
    from harness.trainer import StepData, train

    class Source:
        position = 0

        def next(self, step, model, ctx):
            self.position += 1
            return StepData([{"x": 1.0}], {})

        def state_dict(self):
            return {"position": self.position}

        def load_state_dict(self, state):
            self.position = state["position"]

    def objective(model, examples, ctx):
        return (model(torch.ones(1, 2)) ** 2).sum(), {}

    acc = Accelerator(cpu=True)
    store = Store(tmp_path)
    models = {}
    for run_id, steps in (("a", 2), ("b", 3)):
        cfg = load_config(None, [f"train.steps={steps}", "train.lr=0.1", "train.warmup_steps=0", "train.checkpoint_every=0"])
        store.create_run(cfg.to_dict(), cfg.algo, run_id=run_id)
        torch.manual_seed(len(run_id) + steps)
        models[run_id] = torch.nn.Linear(2, 1)
        train(cfg, store, run_id, models[run_id], None, Source(), objective, accelerator=acc)
    for run_id, model in models.items():
        ckpt = store.latest_checkpoint(run_id)
        assert torch.equal(load_file(str(ckpt / "model.safetensors"))["weight"], model.weight.detach())
        assert [p.name for p in ckpt.glob("custom_checkpoint_*.pkl")] == ["custom_checkpoint_0.pkl"]
        assert torch.load(ckpt / "custom_checkpoint_0.pkl", weights_only=True) == {"position": {"a": 2, "b": 3}[run_id]}
    assert acc._models == [] and acc._custom_objects == []
