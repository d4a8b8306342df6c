"""One OAIF step: the harness trainer (OaifSource + harness.trainer.train) vs TRL's online DPO trainer.

A step on either side: sample two responses for each prompt from the current policy, have the
annotator pick the better one, and take one sigmoid-DPO AdamW step (beta 0.1, clipping at 1.0).
Same model (the embedded SmolLM2-135M-Instruct, fp32 master weights), same prompts (the quickstart
task's, same order, same chat template), same batch, same sampling (temperature 1, no top-k/top-p)
and the same response length on both sides: EOS is held back until `--max-new-tokens`
(`min_new_tokens`), so both sides sample, judge and train on exactly as many tokens. TRL's gradient
checkpointing is off (it would also disable its KV cache while sampling). Both sides use the same
frozen base model as their reference (one copy in memory). Precision (`--precision auto`): bf16
autocast on BOTH sides where the device has native bf16, else fp32 on both.

The harness side is `harness.trainer.train` itself (the loop a real run uses), timed per step by
bench_common.TrainerClock; TRL's steps run interleaved with it in this ONE process (TRL step i, then
the harness's step(s) for round i) so that load from other processes hits both alike; the first
round is a warm-up. Annotator settings:
- `rule`: prefer the shorter response (whitespace words); TRL: reward_funcs = -words.
- `llm`: the embedded SmolLM2 as annotator, `smollm2-logprob` (one forward per order, both orders).
  TRL has no pairwise judges any more (1.16), so its reward function calls THE SAME judge object on
  the pair (completions i and i+B) and returns (p, 1-p): equal annotator work on both sides; the
  harness also writes every sample and label to its store.

Where bf16 is native the harness runs each round twice on the same policy and optimizer: sampling
the policy itself (what TRL samples), and sampling a bf16 copy synced every step (`sampling.dtype:
bf16`, the CPU counterpart of the vLLM backend's low-precision engine). Without native bf16 the copy
would be emulated (slower), so that variant is skipped and the JSON says why.

Writes --out (bench/results/oaif_step.json): median seconds per step and the ratios TRL / harness.

    .venv/bin/python bench/oaif_step.py [--prompts-per-step 4] [--steps 3] [--settings rule llm]
    .venv/bin/python bench/oaif_step.py --smoke --out /tmp/oaif.json   # tiny random model, seconds
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from bench_common import (REPO, PRECISIONS, TrainerClock, judge_on, machine, pick_precision, snapshot,  # noqa: E402
                          tiny_model, weight_change, write_json)
from trl_steps import one_step_driver  # noqa: E402

BETA, LR, MAX_PROMPT = 0.1, 1e-5, 96
JUDGES = {"rule": "rule:shorter", "llm": "smollm2-logprob"}


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()  # CUDA work is asynchronous: stop the clock after it ran


def harness_run(model, tok, batches, judge, variants, max_new, home, device, precision, before):
    """harness.trainer.train over the rounds' prompt `batches`, each round once per sampling variant
    (fp32: the policy itself; bf16: a bf16 copy); `before(round)` runs the other side's step first.
    Returns ({variant: TrainerClock rows}, largest weight change)."""
    from harness import trainer
    from harness.algorithms.oaif import OaifSource, objective_config
    from harness.algorithms.preference import PreferenceObjective
    from harness.config import load_config
    from harness.models import Reference
    from harness.sampling import TransformersSampler
    from harness.store import Store
    from judges import make_label_fn

    bs = len(batches[0])
    cfg = load_config(None, ["algo=oaif", f"train.steps={len(batches) * len(variants)}", f"train.batch_size={bs}",
                             f"train.lr={LR}", "train.schedule=constant", "train.warmup_steps=0",
                             "train.weight_decay=0.0", "train.max_grad_norm=1.0", "train.checkpoint_every=0",
                             "train.keep_checkpoints=1", f"train.mixed_precision={'bf16' if precision == 'bf16' else 'no'}",
                             f"model.device={device}", f"data.max_prompt_tokens={MAX_PROMPT}",
                             f"sampling.max_new_tokens={max_new}", "sampling.temperature=1.0",
                             f"sampling.batch_size={2 * bs}",  # one generate call per step, as TRL's
                             f"loss.beta={BETA}"])
    store = Store(home)
    run_id = store.create_run(cfg.to_dict(), "oaif", "quickstart", name="bench")
    policy = copy.deepcopy(model).train().requires_grad_(True)
    ref = Reference(model, shares_weights=False)  # the frozen base model, shared with the TRL side (memory)
    samplers = {}
    for v in variants:
        s_cfg = copy.deepcopy(cfg.sampling)
        s_cfg.dtype = "auto" if v == "fp32" else "bf16"  # bf16: a sampling-only copy of the policy, synced every step
        samplers[v] = TransformersSampler(s_cfg, policy, tok, cfg.data, min_new_tokens=max_new)
    # step (round i, variant v) gets round i's batch: the same prompts as TRL's step i
    prompts = [p for batch in batches for _ in variants for p in batch]
    source = OaifSource(cfg, store, run_id, samplers[variants[0]], make_label_fn(judge, store, run_id), prompts,
                        "quickstart")
    source._order = lambda epoch: list(range(len(prompts)))  # the TRL side's order

    def round_start(step: int) -> None:
        i, v = divmod(step - 1, len(variants))
        source.sampler = samplers[variants[v]]
        if v == 0:
            before(i + 1)

    clock = TrainerClock(source, store, round_start)
    w0 = snapshot(policy)
    trainer.train(cfg, store, run_id, policy, tok, source, PreferenceObjective(objective_config(cfg)), ref=ref)
    rows = {v: clock.rows[k::len(variants)] for k, v in enumerate(variants)}
    return rows, weight_change(w0, policy)


def reward_fn(judge, bs):
    """TRL reward: completions i and i+B are prompt i's pair; score them with the same judge."""
    from harness.records import Pair, combine_orders

    def text(c):
        return c if isinstance(c, str) else c[-1]["content"]

    def prompt_text(p):
        return p if isinstance(p, str) else p[-1]["content"]

    if hasattr(judge, "score") and judge.annotator.kind == "rule":
        def rule(prompts, completions, **kw):
            return judge.score([prompt_text(p) for p in prompts], [text(c) for c in completions])
        return rule

    def llm(prompts, completions, **kw):
        pairs = [Pair(prompt=prompt_text(prompts[i]), response_a=text(completions[i]),
                      response_b=text(completions[i + bs])) for i in range(bs)]
        labels = judge.judge(pairs, judge.orders)
        p = [combine_orders(labs, getattr(judge, "tie_band", 0.0))[1] for labs in labels]
        p = [0.5 if x is None else x for x in p]
        return p + [1.0 - x for x in p]

    return llm


def trl_stepper(model, tok, prompts, bs, judge, max_new, out_dir, device, precision):
    from datasets import Dataset
    from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer

    rows = [{"prompt": [{"role": "user", "content": p}]} for p in prompts]
    args = OnlineDPOConfig(output_dir=out_dir, per_device_train_batch_size=bs, beta=[BETA], loss_type="sigmoid",
                           learning_rate=LR, lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=1.0,
                           max_new_tokens=max_new, temperature=1.0, top_k=0, top_p=1.0,
                           generation_kwargs={"min_new_tokens": max_new}, max_length=MAX_PROMPT + max_new,
                           gradient_checkpointing=False, report_to=[], use_cpu=device == "cpu", logging_steps=10**6,
                           bf16=precision == "bf16", dataloader_num_workers=0, save_strategy="no")
    policy = copy.deepcopy(model).train().requires_grad_(True)
    trainer = OnlineDPOTrainer(model=policy, ref_model=model, reward_funcs=reward_fn(judge, bs), args=args,
                               train_dataset=Dataset.from_list(rows), processing_class=tok)
    drive = one_step_driver(trainer, bs)
    w0 = snapshot(policy)

    def step(i: int) -> dict:
        t = time.perf_counter()
        loss, _ = drive(i)
        sync(device)
        return {"s": time.perf_counter() - t, "loss": loss}

    step.weight_change = lambda: weight_change(w0, policy)
    return step


def summary(rows: list[dict], bs: int) -> dict:
    out = {"median_s": statistics.median(r["s"] for r in rows), "steps_s": [round(r["s"], 3) for r in rows],
           "loss": [round(r.get("loss", float("nan")), 5) for r in rows]}  # no loss: every pair of the step tied
    for k in ("source/sample_s", "source/judge_s", "time/train_s"):
        if k in rows[0]:
            out[f"median_{k.split('/')[1]}"] = statistics.median(r[k] for r in rows)
    if "sample/len_mean" in rows[0]:
        out["response_tokens_per_step"] = rows[0]["sample/len_mean"] * 2 * bs
    return out


def run_setting(setting, model, tok, prompts, args, precision, variants, tmp: Path, judge_name: str) -> dict:
    from harness.tasks import load_task
    from judges.registry import load_judge

    bs, rounds = args.prompts_per_step, args.steps + args.warmup
    judge = load_judge(judge_name, device=args.device, rubric=load_task("quickstart").rubric)
    torch.manual_seed(0)
    trl = trl_stepper(model, tok, prompts, bs, judge, args.max_new_tokens, str(tmp / "trl"), args.device, precision)
    trl_rows = []
    batches = [prompts[i * bs:(i + 1) * bs] for i in range(rounds)]
    rows, changed = harness_run(model, tok, batches, judge, variants, args.max_new_tokens, tmp / "home", args.device,
                                precision, lambda i: trl_rows.append(trl(i)))
    r = {"annotator": JUDGES[setting] + (" (on the tiny model)" if args.smoke else ""), "trl": summary(trl_rows[args.warmup:], bs)}
    r["trl"]["weight_change"] = trl.weight_change()
    names = {"fp32": "harness", "bf16": "harness_bf16_sampling"}
    for v, name in names.items():
        if v not in rows:
            r[name] = {"skipped": f"precision {precision}: no native bf16 here, a bf16 copy would sample emulated"}
            continue
        r[name] = summary(rows[v][args.warmup:], bs)
        r[f"ratio_trl_over_{name}"] = r["trl"]["median_s"] / r[name]["median_s"]
        print(f"{setting} ({judge_name}): TRL {r['trl']['median_s']:.2f} s/step, {name} {r[name]['median_s']:.2f} "
              f"s/step (sample {r[name]['median_sample_s']:.2f}, judge {r[name]['median_judge_s']:.2f}), ratio "
              f"{r[f'ratio_trl_over_{name}']:.2f} (> 1: harness faster)", flush=True)
    r["harness_weight_change"] = changed
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts-per-step", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per side and setting (after one warm-up)")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--settings", nargs="+", default=["rule", "llm"], choices=sorted(JUDGES))
    ap.add_argument("--model", default="smollm2-135m-instruct", help="the policy (model name or dir)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="fp32 master weights on both sides")
    ap.add_argument("--precision", default="auto", choices=PRECISIONS, help="auto: bf16 where native, else fp32")
    ap.add_argument("--smoke", action="store_true",
                    help="a tiny random model (policy and LLM annotator), 2 prompts, 8 tokens, 1 step, no warm-up")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "oaif_step.json"))
    args = ap.parse_args()
    from harness.config import ModelConfig
    from harness.models import load_model
    from harness.tasks import load_task

    precision, why = pick_precision(args.precision, args.device)
    variants = ["fp32", "bf16"] if precision == "bf16" else ["fp32"]
    args.warmup = 0 if args.smoke else 1
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        judges = dict(JUDGES)
        if args.smoke:
            args.model = tiny_model(Path(tmp))
            args.prompts_per_step, args.steps, args.max_new_tokens = 2, 1, 8
            # one order: a random model's verdicts flip with the order, and both orders would make every pair a tie
            judges["llm"] = judge_on(JUDGES["llm"], args.model, Path(tmp), both_orders=False)
        torch.manual_seed(0)
        model, tok = load_model(ModelConfig(name=args.model, device=args.device, dtype="fp32"), for_training=False)
        prompts = [r["prompt"] for r in load_task("quickstart").prompts("train")]
        prompts = prompts[:args.prompts_per_step * (args.steps + args.warmup)]
        for setting in args.settings:
            work = Path(tmp) / setting
            results[setting] = run_setting(setting, model, tok, prompts, args, precision, variants, work,
                                           judges[setting])
    out = {"bench": "oaif_step", "smoke": args.smoke, "model": args.model, "device": args.device,
           "precision": precision, "prompts_per_step": args.prompts_per_step, "timed_steps": args.steps,
           "max_new_tokens": args.max_new_tokens, "max_prompt_tokens": MAX_PROMPT, "beta": BETA, "lr": LR,
           "machine": machine(precision, why),
           "note": "steps interleaved TRL/harness in one process; median of timed steps", **results}
    write_json(args.out, out)


if __name__ == "__main__":
    main()
