"""One RLOO step: the harness (shared trainer core + sampling backend + store) vs TRL's RLOOTrainer.

Same model (the embedded SmolLM2-135M-Instruct, fp32), same prompts (quickstart, chat template),
4 prompts x k=2 samples per step, the same max new tokens, temperature 1 / top_p 1 / top_k off,
KL coefficient (TRL: beta) 0.05 folded into the reward at the sequence level, lr 1e-5, clip 0.2,
one optimizer step per generation batch, the same scalar reward function (rule `shorter`:
minus the word count, so scoring costs nothing and the step is about RL). TRL's gradient
checkpointing (its default) and bf16 (its default) are turned off: the harness trains fp32 with the
KV cache on, so this compares like with like.

Both run in this ONE process, one after the other. The first step of each (warm-up) and the last
(the harness writes its final checkpoint there) are not timed; the median of the others is. Wall
seconds and this process's CPU seconds are both recorded: on a shared machine the wall time swings
with other people's jobs, CPU seconds (with --threads 1) much less. Writes bench/results/rl_step.json
with both, generated tokens per step and the ratios TRL / harness (> 1: the harness is faster).

    .venv/bin/python bench/rl_step.py [--steps 5] [--max-new-tokens 32] [--threads 1]
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
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

N_PROMPTS, K, KL, LR, CLIP = 4, 2, 0.05, 1e-5, 0.2


def shorter_reward(texts) -> list[float]:
    from judges.rules import n_words

    return [-float(n_words(t)) for t in texts]


def harness_steps(base_model, tok, prompts, steps: int, max_new: int, home: Path, model_name: str) -> dict:
    from harness import trainer
    from harness.algorithms import get_builder
    from harness.config import load_config
    from harness.models import make_reference
    from harness.store import Store

    cfg = load_config(REPO / "configs/rloo_quickstart_cpu.yaml", [f"model.name={model_name}",
        "rl.reward_model=rule:shorter", f"rl.k={K}", f"rl.kl_coef={KL}", f"rl.clip_range={CLIP}",
        f"train.steps={steps}", f"train.batch_size={N_PROMPTS}", f"train.lr={LR}", "train.checkpoint_every=0",
        "train.keep_checkpoints=1", f"sampling.max_new_tokens={max_new}", "data.max_prompt_tokens=64",
        f"data.max_train={len(prompts)}", "train.schedule=constant", "train.warmup_steps=0"])
    store = Store(home)
    run_id = store.create_run(cfg.to_dict(), cfg.algo, task=cfg.data.task, name="bench-rloo")
    model = copy.deepcopy(base_model).train().requires_grad_(True)
    ref = make_reference(model, cfg.model)
    source, objective = get_builder("rlhf")(cfg, store, run_id, model, tok, ref, home)
    marks = []  # (wall, cpu) at the start of every step: a step is the span to the next start
    inner = source.next

    def timed_next(step, model, ctx):
        marks.append((time.perf_counter(), time.process_time()))
        return inner(step, model, ctx)

    source.next = timed_next
    trainer.train(cfg, store, run_id, model, tok, source, objective, ref=ref)
    m = store.metrics([run_id])
    spans = [(b[0] - a[0], b[1] - a[1]) for a, b in zip(marks, marks[1:])][1:]  # drop the warm-up step
    # the last step is not timed: its end also writes the final checkpoint
    timed = m[(m["step"] > 1) & (m["step"] < steps)]
    return _summary(spans) | {"gen_tokens_per_step": statistics.mean(timed["sample/len_mean"]) * N_PROMPTS * K,
                              "reward_mean": statistics.mean(m["reward_mean"])}


def _summary(spans) -> dict:
    return {"s_per_step": statistics.median(w for w, _ in spans), "cpu_s_per_step": statistics.median(c for _, c in spans),
            "steps_timed": len(spans), "wall_s": [round(w, 2) for w, _ in spans],
            "cpu_s": [round(c, 2) for _, c in spans]}


def trl_steps(base_model, tok, prompts, steps: int, max_new: int, out_dir: Path) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import RLOOConfig, RLOOTrainer

    times, lengths, starts = [], [], {}

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            starts["t"] = (time.perf_counter(), time.process_time())

        def on_step_end(self, args, state, control, **kw):
            times.append((time.perf_counter() - starts["t"][0], time.process_time() - starts["t"][1]))

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "completions/mean_length" in logs:
                lengths.append(logs["completions/mean_length"])

    def reward(prompts, completions, **kw):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return shorter_reward(texts)

    args = RLOOConfig(output_dir=str(out_dir), per_device_train_batch_size=N_PROMPTS * K, num_generations=K,
                      max_completion_length=max_new, learning_rate=LR, beta=KL, epsilon=CLIP, max_steps=steps,
                      logging_steps=1, save_strategy="no", report_to=[], gradient_checkpointing=False, bf16=False,
                      use_cpu=True, temperature=1.0, top_p=1.0, top_k=0, disable_dropout=True, seed=0,
                      lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=1.0, shuffle_dataset=True,
                      dataloader_num_workers=0)
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": p}]} for p in prompts])
    model = copy.deepcopy(base_model).train().requires_grad_(True)
    trl = RLOOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=data, processing_class=tok,
                      callbacks=[Clock()])
    trl.train()
    spans = times[1:steps - 1]  # the same steps as the harness's: not the warm-up, not the last
    return _summary(spans) | {"gen_tokens_per_step": statistics.mean(lengths[1:steps - 1]) * N_PROMPTS * K
                              if len(lengths) >= steps - 1 else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5,
                    help="steps per trainer; the first (warm-up) and the last are not timed (default 5)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: torch's); 1 makes CPU seconds a clean measure on a shared machine")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--model", default="smollm2-135m-instruct", help="model name or dir (default: the embedded one)")
    ap.add_argument("--out", default=str(REPO / "bench/results/rl_step.json"))
    args = ap.parse_args()
    if args.steps < 3:
        ap.error("--steps must be >= 3 (warm-up, timed, last)")
    if args.threads:
        torch.set_num_threads(args.threads)
    from importlib import metadata

    from harness.config import ModelConfig
    from harness.models import load_model
    from harness.tasks import load_task

    prompts = [r["prompt"] for r in load_task("quickstart").prompts("train")][:16]
    base, tok = load_model(ModelConfig(name=args.model), for_training=True)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        ours = harness_steps(base, tok, prompts, args.steps, args.max_new_tokens, Path(tmp) / "home", args.model)
        torch.manual_seed(0)
        theirs = trl_steps(base, tok, prompts, args.steps, args.max_new_tokens, Path(tmp) / "trl")
    per_tok = None
    if ours["gen_tokens_per_step"] and theirs["gen_tokens_per_step"]:
        per_tok = ((theirs["cpu_s_per_step"] / theirs["gen_tokens_per_step"])
                   / (ours["cpu_s_per_step"] / ours["gen_tokens_per_step"]))
    result = {
        "bench": "rl_step", "what": "one RLOO optimizer step (sample 4x2, score, reference, update)",
        "model": f"{args.model} (fp32)", "prompts_per_step": N_PROMPTS, "k": K,
        "max_new_tokens": args.max_new_tokens, "kl_coef": KL, "lr": LR,
        "harness": ours, "trl": theirs,
        "ratio_trl_over_harness": theirs["s_per_step"] / ours["s_per_step"],  # wall seconds, median step
        "ratio_cpu_trl_over_harness": theirs["cpu_s_per_step"] / ours["cpu_s_per_step"],  # process CPU seconds
        "ratio_cpu_per_generated_token": per_tok,
        "device": "cuda" if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)",
        "torch_threads": torch.get_num_threads(), "load_avg_at_end": os.getloadavg(),
        "versions": {p: metadata.version(p) for p in ("torch", "transformers", "trl")},
        "host": platform.node(), "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("ratio_trl_over_harness", "ratio_cpu_trl_over_harness",
                                             "ratio_cpu_per_generated_token")}, indent=2))
    print(f"harness {ours['s_per_step']:.2f} s/step ({ours['cpu_s_per_step']:.2f} CPU s), "
          f"TRL {theirs['s_per_step']:.2f} s/step ({theirs['cpu_s_per_step']:.2f} CPU s) -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
