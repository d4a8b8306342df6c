"""One offline DPO optimizer step: the harness (shared trainer core) vs TRL's DPOTrainer.

Same model (the embedded SmolLM2-135M-Instruct, fp32, CPU here), same pairs (HH-RLHF harmless-base
from ../shared/data, chat template, pairs picked so that neither side truncates: prompt <= 96
tokens, responses <= 47 tokens + EOS), same batch (the same pairs in the same order on both
sides), sigmoid DPO loss with beta 0.1, AdamW lr 5e-6, clipping at 1.0. TRL's gradient
checkpointing is turned off (the harness does not checkpoint activations either).

Two settings, both sides in this ONE process, their steps INTERLEAVED (TRL, harness, TRL, ...)
so that load from other processes hits both alike; the first step of each side is a warm-up:
- `ref_each_step`: the reference log-probs are computed inside the step (TRL's default; the
  harness's first epoch, when its reference cache is still empty).
- `ref_cached`: TRL with `precompute_ref_log_probs=True`; the harness from its second epoch on,
  when every pair's reference log-probs come from its cache.

Writes bench/results/dpo_step.json: median wall and process-CPU seconds per step and the ratios
TRL / harness (> 1: the harness is faster). On a loaded machine the CPU ratio is the steadier one.

    .venv/bin/python bench/dpo_step.py [--pairs-per-step 4] [--steps 4]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from trl_steps import one_step_driver  # noqa: E402  (bench/ is on sys.path when run as a script)

BETA, LR, MAX_PROMPT, MAX_RESPONSE = 0.1, 5e-6, 96, 48
HH = REPO.parent / "shared" / "data" / "hh_rlhf_harmless_base_test" / "test.jsonl.gz"


def pick_pairs(tok, n: int) -> list[dict]:
    """HH pairs short enough that no side truncates (so both tokenise the same text in full)."""
    from harness.data import load_preferences
    from harness.logprobs import encode_prompt, encode_response

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recs = load_preferences(str(HH))
    out = []
    for r in recs:
        if len(encode_prompt(tok, r["prompt"])) <= MAX_PROMPT and all(
                len(encode_response(tok, r[k])) < MAX_RESPONSE for k in ("chosen", "rejected")):
            out.append(r)
        if len(out) == n:
            return out
    raise SystemExit(f"only {len(out)} short pairs in {HH}")


def harness_stepper(model, tok, pairs, bs):
    """The body of harness.trainer.train for one step: source.next, run_objective, clip, AdamW."""
    from accelerate import Accelerator

    from harness import trainer
    from harness.algorithms.offline import OfflineSource
    from harness.algorithms.preference import PreferenceObjective
    from harness.config import load_config
    from harness.models import Reference

    cfg = load_config(None, [f"train.batch_size={bs}", f"data.max_prompt_tokens={MAX_PROMPT}",
                             f"data.max_response_tokens={MAX_RESPONSE}", f"loss.beta={BETA}", f"train.lr={LR}",
                             "train.schedule=constant", "train.warmup_steps=0"])
    policy = copy.deepcopy(model).train().requires_grad_(True)
    ref = Reference(copy.deepcopy(model).eval().requires_grad_(False), shares_weights=False)
    source = OfflineSource(pairs, [], cfg, tok, ref)
    source.load_state_dict({"epoch": 0, "pos": 0})
    source._order = list(range(len(pairs)))  # the same pairs in the same order as the TRL side
    objective = PreferenceObjective()
    accelerator = Accelerator(cpu=True)
    ctx = trainer.StepContext(0, cfg, tok, ref, torch.device("cpu"), accelerator)
    params = trainer.trainable_parameters(policy, objective)
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)

    def step(i: int) -> dict:
        ctx.step = i
        if source.pos >= len(pairs):  # keep the fixed order across epochs too
            source.epoch, source.pos = source.epoch + 1, 0
            source._order = list(range(len(pairs)))
        t, c = time.perf_counter(), time.process_time()
        data = source.next(i, policy, ctx)
        metrics = trainer.run_objective(policy, objective, data.examples, ctx, 1, backward=True)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return {"s": time.perf_counter() - t, "cpu_s": time.process_time() - c, "loss": metrics["loss"],
                "tokens": metrics["n_tokens"]}

    return step


def trl_stepper(model, tok, pairs, bs, precompute: bool, out_dir: str):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    rows = [{"prompt": p["prompt"], "chosen": [{"role": "assistant", "content": p["chosen"]}],
             "rejected": [{"role": "assistant", "content": p["rejected"]}]} for p in pairs]
    args = DPOConfig(output_dir=out_dir, per_device_train_batch_size=bs, loss_type=["sigmoid"], beta=BETA,
                     learning_rate=LR, lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=1.0,
                     max_length=None, gradient_checkpointing=False, report_to=[], use_cpu=True, logging_steps=10**6,
                     precompute_ref_log_probs=precompute, bf16=False, dataloader_num_workers=0, save_strategy="no")
    policy = copy.deepcopy(model).train().requires_grad_(True)
    ref = copy.deepcopy(model).eval().requires_grad_(False)
    trainer = DPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=tok)
    drive = one_step_driver(trainer, bs)

    def step(i: int) -> dict:
        t, c = time.perf_counter(), time.process_time()
        loss, inputs = drive(i)
        tokens = int(inputs["completion_mask"].sum())
        return {"s": time.perf_counter() - t, "cpu_s": time.process_time() - c, "loss": loss, "tokens": tokens}

    return step


def interleave(a, b, steps: int, start: int = 1) -> tuple[list, list]:
    ra, rb = [], []
    for i in range(start, start + steps + 1):  # +1: the first step of each side is a warm-up
        ra.append(a(i))
        rb.append(b(i))
    return ra[1:], rb[1:]


def summary(rows: list[dict]) -> dict:
    return {"median_s": statistics.median(r["s"] for r in rows), "steps_s": [round(r["s"], 3) for r in rows],
            "median_cpu_s": statistics.median(r["cpu_s"] for r in rows),
            "loss": [round(r["loss"], 5) for r in rows], "response_tokens_per_step": rows[0]["tokens"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs-per-step", type=int, default=4)
    ap.add_argument("--steps", type=int, default=4, help="timed steps per side and setting (after one warm-up)")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "dpo_step.json"))
    args = ap.parse_args()

    from harness.config import ModelConfig
    from harness.models import load_model

    torch.manual_seed(0)
    model, tok = load_model(ModelConfig(), for_training=False)
    bs, steps = args.pairs_per_step, args.steps
    pairs = pick_pairs(tok, bs * (steps + 1))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        # 1) reference computed inside the step on both sides (harness epoch 1: cache misses)
        trl = trl_stepper(model, tok, pairs, bs, precompute=False, out_dir=tmp)
        ours = harness_stepper(model, tok, pairs, bs)
        t_rows, h_rows = interleave(trl, ours, steps)
        results["ref_each_step"] = {"trl": summary(t_rows), "harness": summary(h_rows)}
        # 2) reference cached: TRL precomputes it; the harness has seen every pair once (epoch 2)
        del trl
        trl = trl_stepper(model, tok, pairs, bs, precompute=True, out_dir=tmp)
        t_rows, h_rows = interleave(trl, ours, steps, start=steps + 2)
        results["ref_cached"] = {"trl": summary(t_rows), "harness": summary(h_rows)}
    for name, r in results.items():
        r["ratio_trl_over_harness"] = r["trl"]["median_s"] / r["harness"]["median_s"]
        # CPU seconds of this process per step: less sensitive than wall time to other processes' load
        r["cpu_ratio_trl_over_harness"] = r["trl"]["median_cpu_s"] / r["harness"]["median_cpu_s"]
        print(f"{name}: TRL {r['trl']['median_s']:.2f} s/step, harness {r['harness']['median_s']:.2f} s/step, "
              f"ratio {r['ratio_trl_over_harness']:.2f}; CPU s/step {r['trl']['median_cpu_s']:.2f} vs "
              f"{r['harness']['median_cpu_s']:.2f}, ratio {r['cpu_ratio_trl_over_harness']:.2f} (> 1: harness faster)")
    import trl
    import transformers

    out = {"bench": "dpo_step", "model": "smollm2-135m-instruct (fp32)", "device": "cpu",
           "threads": torch.get_num_threads(), "pairs_per_step": bs, "timed_steps": steps,
           "max_prompt_tokens": MAX_PROMPT, "max_response_tokens": MAX_RESPONSE, "beta": BETA, "lr": LR,
           "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__},
           "host": platform.node(), "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "note": "steps interleaved TRL/harness in one process; median of timed steps; shared 2-core machine",
           **results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
