"""One OAIF step: the harness (OaifSource + the shared trainer core) vs TRL's online DPO trainer.

A step on either side: sample two responses for each prompt from the current policy, have the
annotator pick the better one, and take one sigmoid-DPO AdamW step (beta 0.1, clipping at 1.0).
Same model (the embedded SmolLM2-135M-Instruct, fp32, CPU here), same prompts (the quickstart
task's, same order, same chat template), same batch, same sampling (temperature 1, no top-k/top-p)
and the same response length on both sides: EOS is held back until `--max-new-tokens`
(`min_new_tokens`), so both sides sample, judge and train on exactly as many tokens. TRL's gradient
checkpointing is off (it would also disable its KV cache while sampling). Both sides use the same
frozen base model as their reference (one copy in memory, the machine is shared).

Annotator settings (each in this ONE process, steps INTERLEAVED TRL, harness, TRL, ... so that
load from other processes hits both alike; the first step of each side is a warm-up):
- `rule`: prefer the shorter response (whitespace words); TRL: reward_funcs = -words.
- `llm`: the embedded SmolLM2 as annotator, `smollm2-logprob` (one forward per order, both orders).
  TRL has no pairwise judges any more (1.16), so its reward function calls THE SAME judge object on
  the pair (completions i and i+B) and returns (p, 1-p): equal annotator work on both sides; the
  harness also writes every sample and label to its store.

The harness side runs twice per round on the same policy and optimizer: sampling the fp32 policy
itself (exactly what TRL samples), and sampling a bf16 copy synced every step (`sampling.dtype:
bf16`, the CPU counterpart of the vLLM backend's low-precision engine).

Writes bench/results/oaif_step.json: median seconds per step and the ratios TRL / harness.

    .venv/bin/python bench/oaif_step.py [--prompts-per-step 4] [--steps 3] [--settings rule llm]
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
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from trl_steps import one_step_driver  # noqa: E402  (bench/ is on sys.path when run as a script)

BETA, LR, MAX_PROMPT = 0.1, 1e-5, 96
JUDGES = {"rule": "rule:shorter", "llm": "smollm2-logprob"}


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()  # CUDA work is asynchronous: stop the clock after it ran


def harness_stepper(model, tok, prompts, bs, judge, max_new, home, device="cpu"):
    """The body of harness.trainer.train for one OAIF step: source.next, run_objective, clip, AdamW."""
    from accelerate import Accelerator

    from harness import trainer
    from harness.algorithms.oaif import OaifSource, objective_config
    from harness.algorithms.preference import PreferenceObjective
    from harness.config import load_config
    from harness.models import Reference
    from harness.sampling import TransformersSampler
    from harness.store import Store
    from judges import make_label_fn

    cfg = load_config(None, ["algo=oaif", f"train.batch_size={bs}", f"data.max_prompt_tokens={MAX_PROMPT}",
                             f"sampling.max_new_tokens={max_new}", "sampling.temperature=1.0",
                             f"sampling.batch_size={2 * bs}",  # one generate call per step, as TRL's f"loss.beta={BETA}",
                             f"train.lr={LR}", "train.schedule=constant", "train.warmup_steps=0"])
    store = Store(home)
    run_id = store.create_run(cfg.to_dict(), "oaif", "quickstart", name="bench")
    policy = copy.deepcopy(model).train().requires_grad_(True)
    ref = Reference(model, shares_weights=False)  # the frozen base model, shared with the TRL side (memory)
    sampler = TransformersSampler(cfg.sampling, policy, tok, cfg.data, min_new_tokens=max_new)
    bf16_cfg = copy.deepcopy(cfg.sampling)
    bf16_cfg.dtype = "bf16"  # a sampling-only bf16 copy of the policy, synced every step
    samplers = {"fp32": sampler, "bf16": TransformersSampler(bf16_cfg, policy, tok, cfg.data, min_new_tokens=max_new)}
    source = OaifSource(cfg, store, run_id, sampler, make_label_fn(judge, store, run_id), prompts, "quickstart")
    source._order = lambda epoch: list(range(len(prompts)))  # the TRL side's order
    objective = PreferenceObjective(objective_config(cfg))
    ctx = trainer.StepContext(0, cfg, tok, ref, torch.device(device), Accelerator(cpu=device == "cpu"), store, run_id)
    params = trainer.trainable_parameters(policy, objective)
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)

    def step(i: int, sampling: str = "fp32") -> dict:
        source.sampler = samplers[sampling]
        i = i if sampling == "fp32" else 1000 + i  # its own step numbers in the store
        ctx.step = i
        t = time.perf_counter()
        data = source.next(i, policy, ctx)
        t_source = time.perf_counter() - t
        metrics = trainer.run_objective(policy, objective, data.examples, ctx, 1, backward=True) if data.examples else {}
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        return {"s": time.perf_counter() - t, "loss": metrics.get("loss", float("nan")),
                "sample_s": data.metrics["source/sample_s"], "judge_s": data.metrics["source/judge_s"],
                "source_s": t_source, "pairs": len(data.examples),
                "response_tokens": data.metrics["sample/len_mean"] * 2 * bs}

    return step


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


def trl_stepper(model, tok, prompts, bs, judge, max_new, out_dir, device="cpu"):
    from datasets import Dataset
    from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer

    rows = [{"prompt": [{"role": "user", "content": p}]} for p in prompts]
    args = OnlineDPOConfig(output_dir=out_dir, per_device_train_batch_size=bs, beta=[BETA], loss_type="sigmoid",
                           learning_rate=LR, lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=1.0,
                           max_new_tokens=max_new, temperature=1.0, top_k=0, top_p=1.0,
                           generation_kwargs={"min_new_tokens": max_new}, max_length=MAX_PROMPT + max_new,
                           gradient_checkpointing=False, report_to=[], use_cpu=device == "cpu", logging_steps=10**6, bf16=False,
                           dataloader_num_workers=0, save_strategy="no")
    policy = copy.deepcopy(model).train().requires_grad_(True)
    trainer = OnlineDPOTrainer(model=policy, ref_model=model, reward_funcs=reward_fn(judge, bs), args=args,
                               train_dataset=Dataset.from_list(rows), processing_class=tok)
    drive = one_step_driver(trainer, bs)

    def step(i: int) -> dict:
        t = time.perf_counter()
        loss, _ = drive(i)
        sync(device)
        return {"s": time.perf_counter() - t, "loss": loss}

    return step


def interleave(steppers: dict, steps: int) -> dict[str, list]:
    rows = {k: [] for k in steppers}
    for i in range(1, steps + 2):  # +1: the first step of each side is a warm-up
        for name, fn in steppers.items():
            rows[name].append(fn(i))
    return {k: v[1:] for k, v in rows.items()}


def summary(rows: list[dict]) -> dict:
    out = {"median_s": statistics.median(r["s"] for r in rows), "steps_s": [round(r["s"], 3) for r in rows],
           "loss": [round(r["loss"], 5) for r in rows]}
    for k in ("sample_s", "judge_s", "source_s"):
        if k in rows[0]:
            out[f"median_{k}"] = statistics.median(r[k] for r in rows)
    if "response_tokens" in rows[0]:
        out["response_tokens_per_step"] = rows[0]["response_tokens"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts-per-step", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per side and setting (after one warm-up)")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--settings", nargs="+", default=["rule", "llm"], choices=sorted(JUDGES))
    ap.add_argument("--model", default="smollm2-135m-instruct", help="the policy (a smoke test may pass a tiny model)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="fp32 weights on both sides either way")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "oaif_step.json"))
    args = ap.parse_args()

    from harness.config import ModelConfig
    from harness.models import load_model
    from harness.tasks import load_task
    from judges.registry import load_judge

    torch.manual_seed(0)
    model, tok = load_model(ModelConfig(name=args.model, device=args.device, dtype="fp32"), for_training=False)
    bs, steps = args.prompts_per_step, args.steps
    prompts = [r["prompt"] for r in load_task("quickstart").prompts("train")][:bs * (steps + 1)]
    results = {}
    for setting in args.settings:
        judge = load_judge(JUDGES[setting], device=args.device, rubric=load_task("quickstart").rubric)
        with tempfile.TemporaryDirectory() as tmp:
            torch.manual_seed(0)
            trl = trl_stepper(model, tok, prompts, bs, judge, args.max_new_tokens, tmp, args.device)
            ours = harness_stepper(model, tok, prompts, bs, judge, args.max_new_tokens, Path(tmp) / "home",
                                   args.device)
            rows = interleave({"trl": trl, "harness": ours, "harness_bf16_sampling": lambda i: ours(i, "bf16")},
                              steps)
        r = {"annotator": JUDGES[setting], **{k: summary(v) for k, v in rows.items()}}
        r["ratio_trl_over_harness"] = r["trl"]["median_s"] / r["harness"]["median_s"]
        r["ratio_trl_over_harness_bf16_sampling"] = r["trl"]["median_s"] / r["harness_bf16_sampling"]["median_s"]
        results[setting] = r
        for k in ("harness", "harness_bf16_sampling"):
            print(f"{setting} ({JUDGES[setting]}): TRL {r['trl']['median_s']:.2f} s/step, {k} "
                  f"{r[k]['median_s']:.2f} s/step (sample {r[k]['median_sample_s']:.2f}, judge "
                  f"{r[k]['median_judge_s']:.2f}), ratio {r['trl']['median_s'] / r[k]['median_s']:.2f} "
                  "(> 1: harness faster)", flush=True)
        del trl, ours, judge
    import transformers
    import trl

    out = {"bench": "oaif_step", "model": f"{args.model} (fp32 policy)", "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
           "threads": torch.get_num_threads(), "prompts_per_step": bs, "timed_steps": steps,
           "max_new_tokens": args.max_new_tokens, "max_prompt_tokens": MAX_PROMPT, "beta": BETA, "lr": LR,
           "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__},
           "host": platform.node(), "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "load_avg_1m_at_end": os.getloadavg()[0],
           "note": "steps interleaved TRL/harness in one process; median of timed steps; "
                   + ("one GPU" if args.device == "cuda" else "shared 2-core machine"),
           **results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
