"""Does training at the OAIF paper's lr (5e-7) change the weights? One JSON line.

A 256x256 layer of weights ~N(0, 0.02) is fit to a fixed random target for 3 steps through the
harness trainer (harness.trainer.train). With fp32 master weights and bf16 autocast
(`--weights float32 --mixed bf16`) every weight moves; with bf16 weights (`--weights bfloat16 --mixed
no`) an AdamW update (~5e-7) is ~100x below half of bf16's spacing at 0.02 (~6e-5) and rounds away.
Prints {"check": "mixed_precision", "changed": fraction of weights changed, ...}. Run it once per
mode and process: accelerate fixes the mixed-precision mode once per process.

    python bench/mixed_precision_check.py --weights float32 --mixed bf16 [--device cuda] [--out FILE]
    python bench/mixed_precision_check.py --smoke --out /tmp/mp.json   # one step: seconds
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.config import load_config  # noqa: E402
from harness.store import Store  # noqa: E402
from harness.trainer import StepData, train  # noqa: E402


class FixedBatch:
    """The same 64 examples every step (the step source)."""

    def next(self, step, model, ctx):
        return StepData([{"i": i} for i in range(64)], {})

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def check(weights: str, mixed: str, device: str = "cpu", lr: float = 5e-7, steps: int = 3,
          home: str | None = None) -> dict:
    torch.manual_seed(0)
    layer = torch.nn.Linear(256, 256, bias=False)
    torch.nn.init.normal_(layer.weight, std=0.02)
    layer.to(getattr(torch, weights))
    before = layer.weight.detach().clone()
    x, y = torch.randn(64, 256), torch.randn(64, 256)
    compute = set()

    def objective(model, examples, ctx):
        idx = torch.tensor([e["i"] for e in examples])
        inp = x[idx].to(ctx.device, layer.weight.dtype)
        kind = ctx.device.type
        compute.add(str(torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else inp.dtype))
        return ((model(inp).float() - y[idx].to(ctx.device)) ** 2).mean(), {}

    cfg = load_config(None, [f"train.steps={steps}", "train.batch_size=64", f"train.lr={lr}", "train.warmup_steps=0",
                             "train.schedule=constant", "train.checkpoint_every=0", f"train.mixed_precision={mixed}",
                             f"model.device={device}"])
    store = Store(home or tempfile.mkdtemp(prefix="mp-check-"))
    store.create_run(cfg.to_dict(), cfg.algo, run_id="r")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(cfg, store, "r", layer, None, FixedBatch(), objective)
    changed = (layer.weight.detach().cpu() != before.cpu()).float().mean().item()
    return {"check": "mixed_precision", "weights": str(layer.weight.dtype).removeprefix("torch."), "mixed_precision": mixed, "device": device, "lr": lr,
            "steps": steps, "changed": changed, "compute": sorted(compute),
            "warnings": [str(w.message) for w in caught if "master weights" in str(w.message)]}


def main(argv=None) -> None:
    from bench_common import machine, write_json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default="float32", choices=("float32", "bfloat16"))
    ap.add_argument("--mixed", default="bf16", choices=("no", "bf16", "fp16"))
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--lr", type=float, default=5e-7)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--home", default=None, help="store for the run (default: a temp dir)")
    ap.add_argument("--smoke", action="store_true", help="one step (the check is seconds either way)")
    ap.add_argument("--out", default=None, help="also write the JSON (with the machine) here")
    args = ap.parse_args(argv)
    out = check(args.weights, args.mixed, args.device, args.lr, steps=1 if args.smoke else args.steps, home=args.home)
    print(json.dumps(out), flush=True)  # the one JSON line gpu_check.sh collects
    if args.out:
        write_json(args.out, {**out, "smoke": args.smoke, "machine": machine()})


if __name__ == "__main__":
    main()
