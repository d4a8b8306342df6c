"""One JSON line on a finished `harness train` run's step times, from the store (no re-timing).

    python bench/step_report.py --home H --run-id R --model DIR [--check NAME] [--peak-tflops P]

Medians over the steps after the first (warm-up): seconds per step, per source part (sampling +
labelling for OAIF) and per train part (forward + backward + AdamW), response tokens per second,
and the train part's model-FLOPs utilisation over response tokens,
`mfu_response_tokens = 6 * n_params * response_tokens / train_s / peak`: a LOWER bound (prompt tokens
also run forward and backward, and are not counted). The peak is bf16 dense for known GPUs (or
--peak-tflops); on a CPU or unknown device mfu is null.

    python bench/step_report.py --smoke --out /tmp/report.json   # trains a tiny model 2 steps, reports it
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# bf16 dense tensor-core peaks (vendor datasheets), TFLOP/s
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}


def n_params(model_dir: str) -> int:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    return sum(p.numel() for p in model.parameters())


def device_peak(explicit: float | None) -> tuple[float | None, str]:
    import torch

    if explicit:
        return explicit, "--peak-tflops"
    if not torch.cuda.is_available():
        return None, "cpu"
    name = torch.cuda.get_device_name(0)
    peak = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    return peak, name


def report(home: str, run_id: str, model_dir: str, check: str, peak_tflops: float | None = None) -> dict:
    from harness.store import Store

    m = Store(home).metrics([run_id]).sort_values("step")
    timed = m.iloc[1:] if len(m) > 1 else m
    med = {k: statistics.median(timed[k].dropna().tolist()) for k in ("time/step_s", "time/source_s", "time/train_s")
           if k in timed and timed[k].notna().any()}
    tokens = statistics.median(timed["n_tokens"].dropna().tolist()) if "n_tokens" in timed else None
    params = n_params(model_dir)
    peak, device = device_peak(peak_tflops)
    train_s = med.get("time/train_s")
    mfu = (6 * params * tokens / train_s / (peak * 1e12)) if (peak and tokens and train_s) else None
    return {"check": check, "run_id": run_id, "device": device, "n_params": params, "steps_timed": len(timed),
            "step_s": med.get("time/step_s"), "source_s": med.get("time/source_s"), "train_s": train_s,
            "response_tokens_per_step": tokens,
            "response_tokens_per_s": (tokens / train_s) if tokens and train_s else None,
            "peak_tflops_bf16": peak, "mfu_response_tokens": mfu}


def smoke_run(work: Path) -> tuple[str, str, str]:
    """(home, run_id, model dir) of a 2-step OAIF run (rule annotator) of the tiny random model."""
    from bench_common import REPO, tiny_model
    from harness.cli import main as harness

    tiny, home = tiny_model(work), str(work / "home")
    rc = harness(["--home", home, "train", str(REPO / "configs" / "oaif_quickstart_rule_shorter.yaml"),
                  f"model.name={tiny}", "train.steps=2", "train.batch_size=2", "train.checkpoint_every=0",
                  "sampling.max_new_tokens=8", "judge.validity_pairs=4", "--run-id", "smoke"])
    if rc:
        raise SystemExit(f"step_report --smoke: harness train exited {rc}")
    return home, "smoke", tiny


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home")
    ap.add_argument("--run-id")
    ap.add_argument("--model", help="the policy's model dir (its config gives the parameter count)")
    ap.add_argument("--check", default="step_time")
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--smoke", action="store_true", help="report a 2-step run of a tiny random model, made here")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    if not args.smoke and not (args.home and args.run_id and args.model):
        ap.error("--home, --run-id and --model are required (or --smoke)")
    with tempfile.TemporaryDirectory() as tmp:
        if args.smoke:
            args.home, args.run_id, args.model = smoke_run(Path(tmp))
        out = report(args.home, args.run_id, args.model, args.check, args.peak_tflops)
    print(json.dumps(out), flush=True)  # the one JSON line gpu_check.sh collects
    if args.out:
        from bench_common import machine, write_json

        write_json(args.out, {**out, "smoke": args.smoke, "machine": machine()})


if __name__ == "__main__":
    main()
