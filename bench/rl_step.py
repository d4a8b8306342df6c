"""One RLOO step: the harness (shared trainer core + sampling backend + store) vs TRL's RLOOTrainer.

Same model (the embedded SmolLM2-135M-Instruct, fp32 master weights), same prompts (quickstart, chat
template), 4 prompts x k=2 samples per step, the same max new tokens, temperature 1 / top_p 1 / top_k
off, KL coefficient (TRL: beta) 0.05 folded into the reward at the sequence level, lr 1e-5, clip 0.2,
one optimizer step per generation batch, the same scalar reward function (rule `shorter`: minus the
word count, so scoring costs nothing and the step is about RL). TRL's gradient checkpointing (its
default) is off: the harness keeps the KV cache on and does not checkpoint activations. Precision
(`--precision auto`): where the device has native bf16, bf16 on BOTH sides (TRL `bf16=True`: autocast,
also while generating; the harness: bf16 autocast training and a bf16 sampling copy), else fp32 on both.

Both run in this ONE process, one after the other, each through its own `train()`: the harness's
is `harness.trainer.train` (timed per step by bench_common.TrainerClock: source + update, up to the
step's metrics being logged), TRL's is `Trainer.train` (timed from on_step_begin to on_step_end).
The first step of each is a warm-up and not timed. Wall seconds and this process's CPU seconds are
both recorded: on a shared machine the wall time swings with other people's jobs, CPU seconds (with
--threads 1) much less. Writes --out (bench/results/rl_step.json) with both, generated tokens per step
and the ratios TRL / harness (> 1: the harness is faster), also per generated token.

    .venv/bin/python bench/rl_step.py [--steps 5] [--max-new-tokens 32] [--threads 1] [--precision auto]
    .venv/bin/python bench/rl_step.py --smoke --out /tmp/rl.json   # tiny random model, seconds
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
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from bench_common import (REPO, PRECISIONS, TrainerClock, machine, pick_precision, snapshot, tiny_model,  # noqa: E402
                          weight_change, write_json)

N_PROMPTS, K, KL, LR, CLIP = 4, 2, 0.05, 1e-5, 0.2


def shorter_reward(texts) -> list[float]:
    from judges.rules import n_words

    return [-float(n_words(t)) for t in texts]


def harness_steps(base_model, tok, prompts, steps: int, warmup: int, max_new: int, home: Path, model_name: str,
                  precision: str) -> dict:
    from harness import trainer
    from harness.algorithms import get_builder
    from harness.config import load_config
    from harness.models import make_reference
    from harness.store import Store

    bf16 = precision == "bf16"
    cfg = load_config(REPO / "configs/rloo_quickstart_cpu.yaml", [f"model.name={model_name}",
        "rl.reward_model=rule:shorter", f"rl.k={K}", f"rl.kl_coef={KL}", f"rl.clip_range={CLIP}",
        f"train.steps={steps}", f"train.batch_size={N_PROMPTS}", f"train.lr={LR}", "train.checkpoint_every=0",
        "train.keep_checkpoints=1", f"sampling.max_new_tokens={max_new}", "data.max_prompt_tokens=64",
        f"data.max_train={len(prompts)}", "train.schedule=constant", "train.warmup_steps=0",
        f"train.mixed_precision={'bf16' if bf16 else 'no'}", f"sampling.dtype={'bf16' if bf16 else 'auto'}"])
    store = Store(home)
    run_id = store.create_run(cfg.to_dict(), cfg.algo, task=cfg.data.task, name="bench-rloo")
    model = copy.deepcopy(base_model).train().requires_grad_(True)
    ref = make_reference(model, cfg.model)
    source, objective = get_builder("rlhf")(cfg, store, run_id, model, tok, ref, home)
    clock = TrainerClock(source, store)
    w0 = snapshot(model)
    trainer.train(cfg, store, run_id, model, tok, source, objective, ref=ref)
    timed = clock.rows[warmup:]
    return _summary([(r["s"], r["cpu_s"]) for r in timed]) | {
        "gen_tokens_per_step": statistics.mean(r["sample/len_mean"] for r in timed) * N_PROMPTS * K,
        "reward_mean": statistics.mean(r["reward_mean"] for r in clock.rows),
        "loss": [round(r["loss"], 5) for r in timed], "weight_change": weight_change(w0, model)}


def _summary(spans) -> dict:
    return {"s_per_step": statistics.median(w for w, _ in spans), "cpu_s_per_step": statistics.median(c for _, c in spans),
            "steps_timed": len(spans), "wall_s": [round(w, 3) for w, _ in spans],
            "cpu_s": [round(c, 3) for _, c in spans]}


def trl_steps(base_model, tok, prompts, steps: int, warmup: int, max_new: int, out_dir: Path, precision: str) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import RLOOConfig, RLOOTrainer

    times, logged, starts = [], [], {}

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            starts["t"] = (time.perf_counter(), time.process_time())

        def on_step_end(self, args, state, control, **kw):
            times.append((time.perf_counter() - starts["t"][0], time.process_time() - starts["t"][1]))

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "completions/mean_length" in logs:
                logged.append(logs)

    def reward(prompts, completions, **kw):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return shorter_reward(texts)

    args = RLOOConfig(output_dir=str(out_dir), per_device_train_batch_size=N_PROMPTS * K, num_generations=K,
                      max_completion_length=max_new, learning_rate=LR, beta=KL, epsilon=CLIP, max_steps=steps,
                      logging_steps=1, save_strategy="no", report_to=[], gradient_checkpointing=False,
                      bf16=precision == "bf16", use_cpu=True, temperature=1.0, top_p=1.0, top_k=0,
                      disable_dropout=True, seed=0, lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=1.0,
                      shuffle_dataset=True, dataloader_num_workers=0)
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": p}]} for p in prompts])
    model = copy.deepcopy(base_model).train().requires_grad_(True)
    w0 = snapshot(model)
    trl = RLOOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=data, processing_class=tok,
                      callbacks=[Clock()])
    trl.train()
    timed = logged[warmup:steps]
    return _summary(times[warmup:]) | {
        "gen_tokens_per_step": statistics.mean(x["completions/mean_length"] for x in timed) * N_PROMPTS * K
        if timed else None,
        "loss": [round(x["loss"], 5) for x in timed if "loss" in x], "weight_change": weight_change(w0, model)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5, help="steps per trainer; the first (warm-up) is not timed")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: torch's); 1 makes CPU seconds a clean measure on a shared machine")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--model", default="smollm2-135m-instruct", help="model name or dir (default: the embedded one)")
    ap.add_argument("--precision", default="auto", choices=PRECISIONS, help="auto: bf16 where native, else fp32")
    ap.add_argument("--smoke", action="store_true", help="a tiny random model, 8 tokens, 1 step, no warm-up: seconds")
    ap.add_argument("--out", default=str(REPO / "bench/results/rl_step.json"))
    args = ap.parse_args()
    warmup = 0 if args.smoke else 1
    if args.steps < warmup + 1:
        ap.error("--steps must be >= 2 (a warm-up, then timed steps)")
    if args.threads:
        torch.set_num_threads(args.threads)
    from harness.config import ModelConfig
    from harness.models import load_model
    from harness.tasks import load_task

    precision, why = pick_precision(args.precision)
    prompts = [r["prompt"] for r in load_task("quickstart").prompts("train")][:16]
    with tempfile.TemporaryDirectory() as tmp:
        if args.smoke:
            args.model, args.steps, args.max_new_tokens = tiny_model(Path(tmp)), 1, 8
        base, tok = load_model(ModelConfig(name=args.model, device="cpu", dtype="fp32"), for_training=True)
        torch.manual_seed(0)
        ours = harness_steps(base, tok, prompts, args.steps, warmup, args.max_new_tokens, Path(tmp) / "home",
                             args.model, precision)
        torch.manual_seed(0)
        theirs = trl_steps(base, tok, prompts, args.steps, warmup, args.max_new_tokens, Path(tmp) / "trl", precision)
    per_tok = None
    if ours["gen_tokens_per_step"] and theirs["gen_tokens_per_step"]:
        per_tok = ((theirs["cpu_s_per_step"] / theirs["gen_tokens_per_step"])
                   / (ours["cpu_s_per_step"] / ours["gen_tokens_per_step"]))
    result = {
        "bench": "rl_step", "smoke": args.smoke, "what": "one RLOO optimizer step (sample 4x2, score, reference, update)",
        "model": args.model, "precision": precision, "prompts_per_step": N_PROMPTS, "k": K,
        "max_new_tokens": args.max_new_tokens, "kl_coef": KL, "lr": LR, "harness": ours, "trl": theirs,
        "ratio_trl_over_harness": theirs["s_per_step"] / ours["s_per_step"],  # wall seconds, median step
        "ratio_cpu_trl_over_harness": theirs["cpu_s_per_step"] / ours["cpu_s_per_step"],  # process CPU seconds
        "ratio_cpu_per_generated_token": per_tok, "device": "cpu", "machine": machine(precision, why),
    }
    write_json(args.out, result)
    print(f"harness {ours['s_per_step']:.2f} s/step ({ours['cpu_s_per_step']:.2f} CPU s, {ours['gen_tokens_per_step']:.0f} "
          f"tokens), TRL {theirs['s_per_step']:.2f} s/step ({theirs['cpu_s_per_step']:.2f} CPU s, "
          f"{theirs['gen_tokens_per_step'] or 0:.0f} tokens); TRL/harness wall {result['ratio_trl_over_harness']:.2f}, "
          f"CPU {result['ratio_cpu_trl_over_harness']:.2f}, CPU per generated token {per_tok or float('nan'):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
