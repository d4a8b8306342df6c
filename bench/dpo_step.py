"""One offline DPO optimizer step: the harness trainer vs TRL's DPOTrainer.

Same model (the embedded SmolLM2-135M-Instruct, fp32 master weights, CPU here), same pairs (HH-RLHF
harmless-base from ../shared/data, chat template, pairs picked so that neither side truncates:
prompt <= 96 tokens, responses <= 47 tokens + EOS), same batch (the same pairs in the same order on
both sides), sigmoid DPO loss with beta 0.1, AdamW lr 5e-6, clipping at 1.0. TRL's gradient
checkpointing is turned off (the harness does not checkpoint activations either). Precision
(`--precision auto`): bf16 autocast on BOTH sides where the device has native bf16, else fp32 on both.

The harness side is `harness.trainer.train` itself (OfflineSource, PreferenceObjective, accelerate,
clipping, AdamW, schedule: the loop a real run uses, not a copy), timed per step by
bench_common.TrainerClock. TRL's steps run interleaved with it in this ONE process (TRL step i, then
harness step i) so that load from other processes hits both alike; the first step of each side and
setting is a warm-up. Two settings, one after the other:
- `ref_each_step`: the reference log-probs are computed inside the step (TRL's default; the
  harness's first epoch, when its reference cache is still empty).
- `ref_cached`: TRL with `precompute_ref_log_probs=True`; the harness from its second epoch on,
  when every pair's reference log-probs come from its cache.

Writes --out (bench/results/dpo_step.json): median wall and process-CPU seconds per step and the
ratios TRL / harness (> 1: the harness is faster). On a loaded machine the CPU ratio is the steadier one.

    .venv/bin/python bench/dpo_step.py [--pairs-per-step 4] [--steps 4] [--precision auto]
    .venv/bin/python bench/dpo_step.py --smoke --out /tmp/dpo.json   # tiny random model, seconds
"""
from __future__ import annotations

import argparse
import copy
import os
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from bench_common import (REPO, PRECISIONS, TrainerClock, machine, pick_precision, snapshot, tiny_model,  # noqa: E402
                          weight_change, write_json)
from trl_steps import one_step_driver  # noqa: E402

BETA, LR, MAX_PROMPT, MAX_RESPONSE = 0.1, 5e-6, 96, 48
HH = REPO.parent / "shared" / "data" / "hh_rlhf_harmless_base_test" / "test.jsonl.gz"
SETTINGS = ("ref_each_step", "ref_cached")


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


def harness_run(model, tok, pairs, bs: int, steps: int, precision: str, home: Path, before) -> tuple[list, float]:
    """`steps` steps of harness.trainer.train on `pairs` in their given order, every epoch; `before(step)`
    runs the other side's step first. Returns (TrainerClock rows, largest weight change)."""
    from harness import trainer
    from harness.algorithms import offline
    from harness.algorithms.preference import PreferenceObjective
    from harness.config import load_config
    from harness.models import Reference
    from harness.store import Store

    cfg = load_config(None, ["algo=dpo", f"train.steps={steps}", f"train.batch_size={bs}", f"train.lr={LR}",
                             "train.schedule=constant", "train.warmup_steps=0", "train.weight_decay=0.0",
                             "train.max_grad_norm=1.0", "train.checkpoint_every=0", "train.keep_checkpoints=1",
                             f"train.mixed_precision={'bf16' if precision == 'bf16' else 'no'}", "model.device=cpu",
                             f"data.max_prompt_tokens={MAX_PROMPT}", f"data.max_response_tokens={MAX_RESPONSE}",
                             f"loss.beta={BETA}"])
    store = Store(home)
    run_id = store.create_run(cfg.to_dict(), "dpo", name="bench-dpo")
    policy = copy.deepcopy(model).train().requires_grad_(True)
    ref = Reference(copy.deepcopy(model).eval().requires_grad_(False), shares_weights=False)
    offline.epoch_order = lambda n, seed, epoch: list(range(n))  # the TRL side's order, every epoch
    source = offline.OfflineSource(pairs, [], cfg, tok, ref)
    clock = TrainerClock(source, store, before)
    w0 = snapshot(policy)
    trainer.train(cfg, store, run_id, policy, tok, source, PreferenceObjective(), ref=ref)
    return clock.rows, weight_change(w0, policy)


def trl_stepper(model, tok, pairs, bs, precompute: bool, precision: str, out_dir: str):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    rows = [{"prompt": p["prompt"], "chosen": [{"role": "assistant", "content": p["chosen"]}],
             "rejected": [{"role": "assistant", "content": p["rejected"]}]} for p in pairs]
    args = DPOConfig(output_dir=out_dir, per_device_train_batch_size=bs, loss_type=["sigmoid"], beta=BETA,
                     learning_rate=LR, lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=1.0,
                     max_length=None, gradient_checkpointing=False, report_to=[], use_cpu=True, logging_steps=10**6,
                     precompute_ref_log_probs=precompute, bf16=precision == "bf16", dataloader_num_workers=0,
                     save_strategy="no")
    policy = copy.deepcopy(model).train().requires_grad_(True)
    ref = copy.deepcopy(model).eval().requires_grad_(False)
    trainer = DPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=tok)
    drive = one_step_driver(trainer, bs)
    w0 = snapshot(policy)

    def step(i: int) -> dict:
        t, c = time.perf_counter(), time.process_time()
        loss, inputs = drive(i)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        return {"s": wall, "cpu_s": cpu, "loss": loss, "n_tokens": int(inputs["completion_mask"].sum())}

    step.weight_change = lambda: weight_change(w0, policy)
    return step


def summary(rows: list[dict]) -> dict:
    return {"median_s": statistics.median(r["s"] for r in rows), "steps_s": [round(r["s"], 3) for r in rows],
            "median_cpu_s": statistics.median(r["cpu_s"] for r in rows),
            "loss": [round(r["loss"], 5) for r in rows], "response_tokens_per_step": int(rows[0]["n_tokens"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs-per-step", type=int, default=4)
    ap.add_argument("--steps", type=int, default=4, help="timed steps per side and setting (after one warm-up)")
    ap.add_argument("--precision", default="auto", choices=PRECISIONS, help="auto: bf16 where native, else fp32")
    ap.add_argument("--model", default="smollm2-135m-instruct", help="model name or dir (both sides)")
    ap.add_argument("--smoke", action="store_true", help="a tiny random model, 2 pairs, 1 step, no warm-up: seconds")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "dpo_step.json"))
    args = ap.parse_args()
    from harness.config import ModelConfig
    from harness.models import load_model

    precision, why = pick_precision(args.precision)
    with tempfile.TemporaryDirectory() as tmp:
        warmup = 0 if args.smoke else 1  # the first step of each side and setting is not timed
        if args.smoke:
            args.model, args.pairs_per_step, args.steps = tiny_model(Path(tmp)), 2, 1
        torch.manual_seed(0)
        model, tok = load_model(ModelConfig(name=args.model, device="cpu", dtype="fp32"), for_training=False)
        bs, steps = args.pairs_per_step, args.steps
        rounds = steps + warmup
        pairs = pick_pairs(tok, bs * rounds)
        trl_rows = {s: [] for s in SETTINGS}
        trl_changed = {}
        live = {}

        def trl_step(step: int) -> None:
            setting = SETTINGS[(step - 1) // rounds]
            if setting not in live:
                for old in list(live):  # one TRL trainer in memory at a time
                    trl_changed[old] = live.pop(old).weight_change()
                live[setting] = trl_stepper(model, tok, pairs, bs, setting == "ref_cached", precision,
                                            str(Path(tmp) / "trl"))
            trl_rows[setting].append(live[setting](step))

        ours, ours_changed = harness_run(model, tok, pairs, bs, 2 * rounds, precision, Path(tmp) / "home", trl_step)
        trl_changed.update({s: fn.weight_change() for s, fn in live.items()})
    results = {}
    for k, setting in enumerate(SETTINGS):
        h_rows = ours[k * rounds:(k + 1) * rounds][warmup:]
        r = {"trl": summary(trl_rows[setting][warmup:]), "harness": summary(h_rows)}
        r["trl"]["weight_change"] = trl_changed[setting]
        r["ratio_trl_over_harness"] = r["trl"]["median_s"] / r["harness"]["median_s"]
        # CPU seconds of this process per step: less sensitive than wall time to other processes' load
        r["cpu_ratio_trl_over_harness"] = r["trl"]["median_cpu_s"] / r["harness"]["median_cpu_s"]
        results[setting] = r
        print(f"{setting}: TRL {r['trl']['median_s']:.2f} s/step, harness {r['harness']['median_s']:.2f} s/step, "
              f"ratio {r['ratio_trl_over_harness']:.2f}; CPU s/step {r['trl']['median_cpu_s']:.2f} vs "
              f"{r['harness']['median_cpu_s']:.2f}, ratio {r['cpu_ratio_trl_over_harness']:.2f} (> 1: harness faster)")
    results["harness_weight_change"] = ours_changed  # one run over both settings
    out = {"bench": "dpo_step", "smoke": args.smoke, "model": args.model, "device": "cpu", "precision": precision,
           "pairs_per_step": bs, "timed_steps": steps, "max_prompt_tokens": MAX_PROMPT,
           "max_response_tokens": MAX_RESPONSE, "beta": BETA, "lr": LR, "machine": machine(precision, why),
           "note": "steps interleaved TRL/harness in one process; median of timed steps", **results}
    write_json(args.out, out)


if __name__ == "__main__":
    main()
