"""What the benches share: the precision both sides run at, the machine a figure came from, the tiny
random model of `--smoke`, the clock around the harness trainer's own steps, and the JSON writer.

Precision: `auto` is bf16 autocast over fp32 master weights where the device computes bf16 natively
(harness.devices: a CPU with avx512_bf16 / amx_bf16, or CUDA), else fp32, and BOTH sides of a bench
(TRL and ours) get the same one. The JSON says which, and why, with the CPU's model and flags.
"""
from __future__ import annotations

import math
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for _p in (REPO, REPO / "tests"):  # the harness, and tests/tiny_llama.py for --smoke
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

PRECISIONS = ("auto", "fp32", "bf16")
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")  # what decides a CPU's bf16 speed


def pick_precision(requested: str = "auto", device: str = "cpu") -> tuple[str, str]:
    """(fp32 | bf16, why) for both sides of a bench: `auto` is bf16 only where it is native."""
    import torch

    from harness.devices import native

    if requested not in PRECISIONS:
        raise ValueError(f"--precision: {requested!r} is not one of {', '.join(PRECISIONS)}")
    if requested != "auto":
        return requested, f"explicit {requested}"
    ok, why = native(torch.bfloat16, torch.device(device))
    return ("bf16" if ok else "fp32"), f"auto: {why}"


def cpu_model() -> str:
    """lscpu's Model name (harness.devices reads it from /proc/cpuinfo, as lscpu does)."""
    from harness.devices import cpu_model as model_name

    return model_name() or platform.processor() or "unknown"


def machine(precision: str | None = None, why: str | None = None) -> dict:
    """The machine a figure came from: CPU model and bf16-relevant flags, torch's dispatch level,
    threads, load, versions; with the precision the bench ran at and why."""
    from importlib import metadata

    import torch

    from harness.devices import cpu_capability, cpu_flags

    flags = cpu_flags()
    out = {"cpu_model": cpu_model(), "cpu_flags": {f: f in flags for f in CPU_FLAGS},
           "cpu_capability": cpu_capability(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
           "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
           "load_avg_1m": os.getloadavg()[0], "host": platform.node(), "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "versions": {}}
    for pkg in ("torch", "transformers", "accelerate", "trl"):
        try:
            out["versions"][pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out["versions"][pkg] = None
    if precision:
        out.update(precision=precision, precision_reason=why)
    return out


def tiny_model(work: Path, heads: int = 2) -> str:
    """A 2-layer, 32-wide random Llama with the embedded model's tokenizer and chat template: the
    smoke modes run the real code paths on it in seconds (its numbers time nothing). heads=1: head
    dimension 32, which vLLM's CPU attention serves on every ISA (16 is refused on AMX Xeons)."""
    from harness.models import resolve_model
    from tiny_llama import make_tiny_llama

    return make_tiny_llama(Path(work) / "tiny-llama", resolve_model("smollm2-135m-instruct"), heads=heads)


def judge_on(name: str, model_dir: str, work: Path, **changes) -> str:
    """A copy of judges/configs/<name>.yaml that runs on `model_dir` (--smoke: the tiny model), with
    `changes` to its settings; its path."""
    import yaml

    data = yaml.safe_load((REPO / "judges" / "configs" / f"{name}.yaml").read_text())
    path = Path(work) / f"{name}-smoke.yaml"
    path.write_text(yaml.safe_dump({**data, "model": model_dir, **changes}))
    return str(path)


def snapshot(model) -> dict:
    return {k: v.detach().float().clone() for k, v in model.named_parameters()}


def weight_change(before: dict, model) -> float:
    """Largest absolute change of any weight since `before` (0.0: the step did not update)."""
    now = dict(model.named_parameters())
    return max(float((now[k].detach().float() - v).abs().max()) for k, v in before.items())


def finite(xs) -> bool:
    return all(isinstance(x, (int, float)) and math.isfinite(x) for x in xs)


def write_json(path: str | Path, obj: dict) -> Path:
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")
    print(f"wrote {path}", file=sys.stderr, flush=True)  # stdout may be one JSON line per check (gpu_check.sh)
    return path


class TrainerClock:
    """Times the harness's steps as `harness.trainer.train` runs them (the real loop, not a copy).

    `before(step)`, the other side's step interleaved with ours, runs at the start of the source's
    `next`, ahead of the harness's own source work; a harness step is timed from after it until the
    trainer logs the step's metrics (`store.log_metrics`): source (sampling, judging, reference) +
    forward/backward + clip + AdamW + schedule, in wall and process-CPU seconds. `rows` holds one
    dict per step: s, cpu_s and the metrics the trainer logged."""

    def __init__(self, source, store, before=None):
        self.rows: list[dict] = []
        self._start = None
        inner_next, inner_log = source.next, store.log_metrics

        def next_(step, model, ctx):
            if before is not None:
                before(step)
            self._start = (time.perf_counter(), time.process_time())
            return inner_next(step, model, ctx)

        def log(run_id, step, metrics, split="train"):
            if split == "train" and self._start is not None:
                wall, cpu = time.perf_counter() - self._start[0], time.process_time() - self._start[1]
                self.rows.append({"step": step, "s": wall, "cpu_s": cpu, **metrics})
                self._start = None
            return inner_log(run_id, step, metrics, split=split)

        source.next, store.log_metrics = next_, log
