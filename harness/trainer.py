"""THE training loop. Every algorithm (sft, dpo & co, oaif, reward_model, rlhf) runs through it.

An algorithm supplies a *source* (what to train on this step: offline pairs in a seeded order,
pairs sampled from the current policy and labelled by a judge, or scored samples for RL) and an
*objective* (loss on a micro-batch). The loop owns everything else: sharding over processes
(accelerate), gradient accumulation, clipping, LR schedule, metrics, checkpoints and exact resume.
"""
from __future__ import annotations

import json
import math
import random
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import RunConfig
from .models import Reference, load_weights, save_weights
from .evaluation.kl import KL_METRIC  # the one KL column; sources that log it keep the name unprefixed
from .store import Store, atomic_write_text
from .trackers import open_trackers


@dataclass
class StepData:
    examples: list[dict]  # the global batch of one optimizer step (or this process's share if sharded)
    metrics: dict = field(default_factory=dict)  # source-side metrics (judge ties, sampling time, ...)
    sharded: bool = False  # True: the source already kept only this process's share


@dataclass
class StepContext:
    step: int
    cfg: RunConfig
    tokenizer: Any
    ref: Reference | None
    device: torch.device
    accelerator: Any
    store: Store | None = None
    run_id: str | None = None

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    @property
    def world(self) -> int:
        return self.accelerator.num_processes

    def shard(self, items: list) -> list:
        """This process's share of a global list (strided, so shards differ by at most one)."""
        return items[self.rank::self.world]


class Source(Protocol):
    def next(self, step: int, model, ctx: StepContext) -> StepData: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


class Objective(Protocol):
    def __call__(self, model, examples: list[dict], ctx: StepContext) -> tuple[torch.Tensor, dict]: ...


def make_scheduler(optimizer, cfg: RunConfig):
    total, warmup, kind = max(cfg.train.steps, 1), cfg.train.warmup_steps, cfg.train.schedule

    def factor(i: int) -> float:  # i = number of optimizer steps taken so far
        if warmup and i < warmup:
            return (i + 1) / (warmup + 1)
        if kind == "constant":
            return 1.0
        progress = min(1.0, (i - warmup) / max(1, total - warmup))
        return 1.0 - progress if kind == "linear" else 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _extra_modules(objective) -> list[torch.nn.Module]:
    return list(objective.modules()) if hasattr(objective, "modules") else []


def trainable_parameters(model, objective) -> list[torch.nn.Parameter]:
    params = [p for p in model.parameters() if p.requires_grad]
    for m in _extra_modules(objective):
        params += [p for p in m.parameters() if p.requires_grad]
    return params


def _micro_batches(examples: list, n: int) -> list[list]:
    """Split into n contiguous chunks whose sizes differ by at most one (empty chunks dropped)."""
    size, rest = divmod(len(examples), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < rest else 0)
        if end > start:
            out.append(examples[start:end])
        start = end
    return out


def _all_reduce_grads(params, accelerator, n_local: int) -> int:
    """Gradient of the mean loss over ALL processes' examples: each process's gradient (of its own
    mean) is weighted by its example count, so shards of 1 and 3 pairs give the 4-pair mean, not the
    mean of two means. One flat all-reduce (extra heads included), the count riding at its end.
    Every process must call it, also one with no examples (zero gradient, count 0): a process that
    skipped it would leave the others waiting. Returns the global example count."""
    if accelerator.num_processes == 1:
        return n_local
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).float() * n_local for g in grads]
                     + [torch.tensor([float(n_local)], device=grads[0].device)])
    dist.all_reduce(flat)
    total = int(round(flat[-1].item()))
    if total:
        flat /= total
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(p).to(g.dtype).clone()
        offset += n
    return total


def run_objective(model, objective, examples, ctx, accum: int, backward: bool) -> dict:
    """Mean loss over `examples` split into `accum` micro-batches; weights each micro-batch by size
    so that 1x8 and 8x1 give the same gradient. Returns size-weighted mean metrics."""
    sums: dict[str, float] = {}
    n_total = len(examples)
    for micro in _micro_batches(examples, accum):
        weight = len(micro) / n_total
        if backward:
            loss, metrics = objective(model, micro, ctx)
            (loss * weight).backward()
        else:
            with torch.no_grad():
                loss, metrics = objective(model, micro, ctx)
        metrics = {"loss": float(loss.detach()), **{k: float(v) for k, v in metrics.items()}}
        for k, v in metrics.items():
            if k.startswith("n_"):  # counts add up, everything else is averaged
                sums[k] = sums.get(k, 0.0) + v
            else:
                sums[k] = sums.get(k, 0.0) + weight * v
    return sums


def evaluate(model, objective, examples, ctx, batch_size: int) -> dict:
    if not examples:
        return {}
    mine = ctx.shard(examples)
    was_training = model.training
    model.eval()
    try:
        out = run_objective(model, objective, mine, ctx, max(1, math.ceil(len(mine) / batch_size)), backward=False) if mine else {}
    finally:
        model.train(was_training)
    return _reduce_weighted(out, len(mine), ctx.accelerator)


def _reduce_weighted(metrics: dict, n: int, accelerator) -> dict:
    """Mean over processes weighted by each one's number of examples (eval shards can differ by one);
    counts (`n_*`) add up."""
    if accelerator.num_processes == 1:
        return metrics
    import torch.distributed as dist
    from accelerate.utils import gather_object

    keys = sorted(set().union(*gather_object([sorted(metrics)])))  # same order everywhere
    t = torch.tensor([float(metrics.get(k, 0.0)) * (1 if k.startswith("n_") else n) for k in keys] + [float(n)],
                     dtype=torch.float64, device=accelerator.device)
    dist.all_reduce(t)
    total = max(t[-1].item(), 1.0)
    return {k: (v if k.startswith("n_") else v / total) for k, v in zip(keys, t[:-1].tolist())}


# -- checkpoints -------------------------------------------------------------------------------

def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def save_checkpoint(store: Store, run_id: str, step: int, model, objective, optimizer, scheduler, source,
                    accelerator, keep: int) -> None:
    """Weights, optimizer, scheduler, RNG (per process) and data position; safetensors + JSON, no pickle."""
    from safetensors.torch import save_file

    rank = accelerator.process_index
    rng = _rng_state()
    tensors = {"rng.torch": rng["torch"]}
    if "cuda" in rng:
        tensors.update({f"rng.cuda.{i}": s for i, s in enumerate(rng["cuda"])})
    np_state = rng["numpy"]
    meta = {"python": [rng["python"][0], list(rng["python"][1]), rng["python"][2]],
            "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])]}
    # Gather RNG states from all processes to the main one through files in the (shared) run dir.
    staging = store.run_dir(run_id) / "checkpoints" / f".rng-step-{step}"
    staging.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(staging / f"rng-{rank}.safetensors"))
    atomic_write_text(staging / f"rng-{rank}.json", json.dumps(meta))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with store.writing_checkpoint(run_id, step, keep=keep) as d:
            save_weights(accelerator.unwrap_model(model), d)
            extras = _extra_modules(objective)
            if extras:
                ex = {f"{i}.{k}": v.detach().contiguous().cpu() for i, m in enumerate(extras)
                      for k, v in m.state_dict().items()}
                save_file(ex, str(d / "extras.safetensors"))
            opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
            save_file(opt_tensors, str(d / "optimizer.safetensors"))
            sched = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
            state = {"step": step, "optimizer": opt_meta, "scheduler": sched, "source": source.state_dict(),
                     "world": accelerator.num_processes}
            (d / "trainer_state.json").write_text(json.dumps(state))
            for f in staging.iterdir():
                f.rename(d / f.name)
        staging.rmdir()
    accelerator.wait_for_everyone()


def _flatten_optimizer(state: dict) -> tuple[dict, dict]:
    tensors, meta_state = {}, {}
    for pid, pstate in state["state"].items():
        meta_state[str(pid)] = {}
        for k, v in pstate.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.detach().contiguous().cpu()
                meta_state[str(pid)][k] = "tensor"
            else:
                meta_state[str(pid)][k] = v
    return tensors, {"state": meta_state, "param_groups": state["param_groups"]}


def _unflatten_optimizer(tensors: dict, meta: dict) -> dict:
    state = {}
    for pid, pstate in meta["state"].items():
        state[int(pid)] = {k: (tensors[f"{pid}.{k}"] if v == "tensor" else v) for k, v in pstate.items()}
    return {"state": state, "param_groups": meta["param_groups"]}


def load_checkpoint(ckpt: Path, model, objective, optimizer, scheduler, source, accelerator) -> int:
    from safetensors.torch import load_file

    state = json.loads((ckpt / "trainer_state.json").read_text())
    if state.get("world", 1) != accelerator.num_processes:
        raise ValueError(f"{ckpt}: saved with {state['world']} processes, resuming with {accelerator.num_processes}")
    load_weights(accelerator.unwrap_model(model), ckpt)
    extras = _extra_modules(objective)
    if extras:
        ex = load_file(str(ckpt / "extras.safetensors"))
        for i, m in enumerate(extras):
            m.load_state_dict({k.split(".", 1)[1]: v for k, v in ex.items() if k.split(".", 1)[0] == str(i)})
    device = next(model.parameters()).device
    opt_tensors = {k: v.to(device) if not k.endswith(".step") else v
                   for k, v in load_file(str(ckpt / "optimizer.safetensors")).items()}
    optimizer.load_state_dict(_unflatten_optimizer(opt_tensors, state["optimizer"]))
    scheduler.load_state_dict({**scheduler.state_dict(), **state["scheduler"]})
    source.load_state_dict(state["source"])
    rank = accelerator.process_index
    t = load_file(str(ckpt / f"rng-{rank}.safetensors"))
    meta = json.loads((ckpt / f"rng-{rank}.json").read_text())
    random.setstate((meta["python"][0], tuple(meta["python"][1]), meta["python"][2]))
    np.random.set_state((meta["numpy"][0], np.array(meta["numpy"][1], dtype=np.uint32), *meta["numpy"][2:]))
    torch.set_rng_state(t["rng.torch"])
    cuda = [t[k] for k in sorted(t) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    return int(state["step"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# -- the loop ----------------------------------------------------------------------------------

def train(cfg: RunConfig, store: Store, run_id: str, model, tokenizer, source: Source, objective: Objective,
          ref: Reference | None = None, accelerator=None) -> dict:
    """Run cfg.train.steps optimizer steps (resuming from the newest checkpoint if cfg.resume)."""
    from accelerate import Accelerator

    accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    seed_everything(cfg.train.seed + accelerator.process_index)
    device = accelerator.device
    model.to(device)
    for m in _extra_modules(objective):
        m.to(device)
    model.train()
    params = trainable_parameters(model, objective)
    optimizer = torch.optim.AdamW(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    scheduler = make_scheduler(optimizer, cfg)
    ctx = StepContext(0, cfg, tokenizer, ref, device, accelerator, store, run_id)

    start = 1
    ckpt = store.latest_checkpoint(run_id) if cfg.resume else None
    if ckpt is not None:
        done = load_checkpoint(ckpt, model, objective, optimizer, scheduler, source, accelerator)
        start = done + 1
        if accelerator.is_main_process:
            store.truncate_run_after(run_id, done)
            print(f"resumed {run_id} from {ckpt} (step {done})", file=sys.stderr)  # stdout may be --format json
    # before the run is marked running: a missing tracker package fails here, leaving no stale status.
    # A crash leaves them as a kill would: event files flushed every few seconds, the store has it all.
    trackers = open_trackers(cfg.train.report_to, store, run_id, cfg.to_dict(), store.get_run(run_id)["group_name"],
                             accelerator.is_main_process)
    if accelerator.is_main_process:
        store.set_run_status(run_id, "running")

    eval_examples = source.eval_examples() if hasattr(source, "eval_examples") else []
    if eval_examples and start == 1:
        _log_eval(store, run_id, 0, evaluate(model, objective, eval_examples, ctx, cfg.train.batch_size), accelerator,
                  trackers)

    last: dict = {}
    bar = tqdm(range(start, cfg.train.steps + 1), desc=f"{cfg.algo} {run_id}", initial=start - 1,
               total=cfg.train.steps, disable=not accelerator.is_main_process, dynamic_ncols=True)
    for step in bar:
        ctx.step = step
        t0 = time.perf_counter()
        data = source.next(step, accelerator.unwrap_model(model), ctx)
        t_source = time.perf_counter() - t0
        if not data.sharded and len(data.examples) % accelerator.num_processes:
            raise ValueError(f"train.batch_size: {len(data.examples)} examples do not split over "
                             f"{accelerator.num_processes} processes")
        mine = data.examples if data.sharded else ctx.shard(data.examples)
        t1 = time.perf_counter()
        metrics = {}
        if mine:
            model.train()
            metrics = run_objective(model, objective, mine, ctx, cfg.train.grad_accum, backward=True)
        # every process joins the all-reduce, also one whose pairs were all skipped (ties)
        if _all_reduce_grads(params, accelerator, len(mine)):
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.train.max_grad_norm)
            optimizer.step()
            if mine:
                metrics["grad_norm"] = float(grad_norm)  # the global gradient's: the same on every process
        optimizer.zero_grad(set_to_none=True)
        with warnings.catch_warnings():
            # A step whose pairs were all skipped (ties) still advances the schedule: steps count
            # batches of prompts, not updates, so resume and budgets stay exact.
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
            scheduler.step()
        t_train = time.perf_counter() - t1
        # weighted by each process's example count, like the gradient; counts (n_*) add up
        metrics = _reduce_weighted(metrics, len(mine), accelerator)
        metrics.update({f"source/{k}" if not k.startswith(("judge/", "sample/", "reward", "source/", KL_METRIC))
                        else k: v for k, v in data.metrics.items()})
        metrics.update({"lr": scheduler.get_last_lr()[0], "time/source_s": t_source, "time/train_s": t_train,
                        "time/step_s": time.perf_counter() - t0})
        if "n_tokens" in metrics:  # n_tokens is the sum over processes
            metrics["tokens_per_s"] = metrics["n_tokens"] / max(t_train, 1e-9)
        if accelerator.is_main_process:
            store.log_metrics(run_id, step, metrics)
            trackers.log(metrics, step)
        bar.set_postfix({k: f"{metrics[k]:.3g}" for k in ("loss", "reward_acc", KL_METRIC) if k in metrics})
        last = metrics
        if cfg.train.eval_every and step % cfg.train.eval_every == 0 and step != cfg.train.steps:
            _log_eval(store, run_id, step, evaluate(model, objective, eval_examples, ctx, cfg.train.batch_size),
                      accelerator, trackers)
        if (cfg.train.checkpoint_every and step % cfg.train.checkpoint_every == 0) or step == cfg.train.steps:
            save_checkpoint(store, run_id, step, model, objective, optimizer, scheduler, source, accelerator,
                            cfg.train.keep_checkpoints)
    if eval_examples:
        last = {**last, **{f"eval/{k}": v for k, v in
                           _log_eval(store, run_id, cfg.train.steps,
                                     evaluate(model, objective, eval_examples, ctx, cfg.train.batch_size),
                                     accelerator, trackers).items()}}
    trackers.finish()
    if accelerator.is_main_process:
        store.set_run_status(run_id, "done")
        store.drop_resume_state(run_id)
    return last


def _log_eval(store, run_id, step, metrics, accelerator, trackers) -> dict:
    if metrics and accelerator.is_main_process:
        store.log_metrics(run_id, step, metrics, split="eval")
        trackers.log(metrics, step, split="eval")
    return metrics
