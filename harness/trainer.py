"""THE training loop. Every algorithm (sft, dpo & co, oaif, reward_model, rlhf) runs through it.

An algorithm supplies a *source* (what to train on this step: offline pairs in a seeded order,
pairs sampled from the current policy and labelled by a judge, or scored samples for RL) and an
*objective* (loss on a micro-batch). The loop owns everything else: sharding over processes
(accelerate), gradient accumulation, clipping, LR schedule, metrics, checkpoints and exact resume.
"""
from __future__ import annotations

import contextlib
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
from .models import Reference, load_weights, save_weights, save_weights_state
from .evaluation.kl import KL_METRIC  # the one KL column; sources that log it keep the name unprefixed
from .store import Store
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


# ours -> transformers.get_scheduler's name (the config's allowed values come from here)
SCHEDULES = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}


def make_scheduler(optimizer, cfg: RunConfig):
    """transformers' schedules: linear warmup from 0 over warmup_steps, then linear/cosine decay to 0
    at train.steps (or constant)."""
    from transformers import get_scheduler

    return get_scheduler(SCHEDULES[cfg.train.schedule], optimizer, num_warmup_steps=cfg.train.warmup_steps,
                         num_training_steps=max(cfg.train.steps, 1))


def make_accelerator(cfg: RunConfig):
    """The Accelerator a run trains under: CPU or GPU by model.device, mixed precision by
    train.mixed_precision (devices.resolve_mixed_precision). Under `accelerate launch` the launch
    config decides the distributed type (DDP, FSDP, DeepSpeed)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState

    from .devices import resolve_mixed_precision

    cpu = not torch.cuda.is_available() or cfg.model.device == "cpu"
    mixed, _ = resolve_mixed_precision(cfg.train.mixed_precision, "cpu" if cpu else "cuda")
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") != mixed and PartialState().num_processes == 1:
        # accelerate keeps one mode per process; another Accelerator in this process (e.g. a TRL
        # trainer, whose default is bf16) fixed another one, which would refuse (or silently set) ours
        AcceleratorState._reset_state()
    return Accelerator(cpu=cpu, mixed_precision=mixed, step_scheduler_with_optimizer=False)


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


def _add_metrics(sums: dict, loss, metrics: dict, weight: float) -> None:
    for k, v in {"loss": float(loss.detach()), **{k: float(v) for k, v in metrics.items()}}.items():
        # counts add up, everything else is averaged
        sums[k] = sums.get(k, 0.0) + (v if k.startswith("n_") else weight * v)


def backward_step(model, objective, examples, ctx, accum: int, scale: float, synced: list) -> dict:
    """Backward of `scale` x (mean loss over `examples`), in `accum` micro-batches each weighted by its
    size (so 1x8 and 8x1 give the same gradient). DDP all-reduces once, in the last micro-batch's
    backward: the others run under no_sync for every prepared module in `synced`. (Not
    accelerator.accumulate: it counts micro-batches across steps, and a step here may have fewer than
    grad_accum of them when ties were skipped.) Returns size-weighted mean metrics."""
    acc = ctx.accelerator
    micros = _micro_batches(examples, accum)
    sums: dict[str, float] = {}
    for i, micro in enumerate(micros):
        weight = len(micro) / len(examples)
        with contextlib.ExitStack() as stack:
            if i < len(micros) - 1:
                for m in synced:
                    stack.enter_context(acc.no_sync(m))
            with acc.autocast():
                loss, metrics = objective(model, micro, ctx)
            acc.backward(loss * (weight * scale))
        _add_metrics(sums, loss, metrics, weight)
    return sums


def evaluate(model, objective, examples, ctx, batch_size: int) -> dict:
    if not examples:
        return {}
    mine = ctx.shard(examples)
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    try:
        with torch.no_grad(), ctx.accelerator.autocast():
            for micro in _micro_batches(mine, max(1, math.ceil(len(mine) / batch_size))):
                loss, metrics = objective(model, micro, ctx)
                _add_metrics(sums, loss, metrics, len(micro) / len(mine))
    finally:
        model.train(was_training)
    return _reduce_weighted(sums, len(mine), ctx.accelerator)


def _reduce_weighted(metrics: dict, n: int, accelerator) -> dict:
    """Mean over processes weighted by each one's number of examples (eval shards can differ by one);
    counts (`n_*`) add up."""
    if accelerator.num_processes == 1:
        return metrics
    from accelerate.utils import gather_object

    keys = sorted(set().union(*gather_object([sorted(metrics)])))  # same order everywhere
    t = torch.tensor([float(metrics.get(k, 0.0)) * (1 if k.startswith("n_") else n) for k in keys] + [float(n)],
                     dtype=torch.float64, device=accelerator.device)
    t = accelerator.reduce(t, "sum")
    total = max(t[-1].item(), 1.0)
    return {k: (v if k.startswith("n_") else v / total) for k, v in zip(keys, t[:-1].tolist())}


def _global_share(mine: list, accelerator) -> tuple[int, list, float]:
    """(global example count, what this process runs, its loss scale). DDP averages the processes'
    gradients, so a process's mean loss is scaled by n_mine * world / n_global: the average is then
    the gradient of the mean over ALL examples (shards of 1 and 3 pairs give the 4-pair mean, not the
    mean of two means). A process whose pairs were all skipped still has to run a backward (DDP's
    all-reduce happens in it, the others would wait): it runs another process's first example at
    scale 0."""
    world = accelerator.num_processes
    if world == 1:
        return len(mine), mine, 1.0
    from accelerate.utils import gather_object

    counts = accelerator.gather(torch.tensor([len(mine)], device=accelerator.device)).tolist()
    total = int(sum(counts))
    if not total or min(counts) > 0:
        return total, mine, len(mine) * world / max(total, 1)
    donors = gather_object([mine[:1]])  # a collective: every process joins, only the empty ones use it
    if mine:
        return total, mine, len(mine) * world / total
    return total, next(d for d in donors if d), 0.0


# -- checkpoints: accelerate's save_state/load_state, weights in the harness layout -------------------

def _sharded(accelerator) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)


def _register_weight_hooks(accelerator) -> list:
    """accelerate saves optimizer, scheduler, RNG of every process and the step source; the weights go
    in the harness layout instead (model.safetensors with the trainable tensors only, just the adapter
    with LoRA; extras.safetensors for heads), which eval, init_from and export read. Under FSDP and
    DeepSpeed accelerate keeps its sharded files (resume reads those) and save_checkpoint adds the
    gathered weights."""
    from safetensors.torch import load_file, save_file

    def save(models, weights, output_dir):
        if _sharded(accelerator):
            return
        weights.clear()  # accelerate writes no model files
        if accelerator.is_main_process:
            save_weights(accelerator.unwrap_model(models[0]), Path(output_dir))
            if len(models) > 1:
                save_file({f"{i}.{k}": v.detach().contiguous().cpu() for i, m in enumerate(models[1:])
                           for k, v in accelerator.unwrap_model(m).state_dict().items()},
                          str(Path(output_dir) / "extras.safetensors"))

    def load(models, input_dir):
        if _sharded(accelerator):
            return
        load_weights(accelerator.unwrap_model(models[0]), input_dir)
        if len(models) > 1:
            ex = load_file(str(Path(input_dir) / "extras.safetensors"))
            for i, m in enumerate(models[1:]):
                accelerator.unwrap_model(m).load_state_dict(
                    {k.split(".", 1)[1]: v for k, v in ex.items() if k.split(".", 1)[0] == str(i)})
        models.clear()  # loaded: accelerate reads no model files

    return [accelerator.register_save_state_pre_hook(save), accelerator.register_load_state_pre_hook(load)]


def save_checkpoint(store: Store, run_id: str, step: int, model, accelerator, keep: int) -> None:
    """accelerate.save_state into one staging dir all processes share, then renamed into place
    (COMPLETE) by the main process: a kill mid-write leaves no checkpoint that looks whole."""
    staging = store.checkpoints_dir(run_id) / f".tmp-step-{step}"
    if accelerator.is_main_process:
        staging = store.checkpoint_staging_dir(run_id, step)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))
    if _sharded(accelerator):  # gathered full weights for the readers (a collective: every process)
        state = accelerator.get_state_dict(model)
        if accelerator.is_main_process:
            save_weights_state(state, accelerator.unwrap_model(model), staging)
    if accelerator.is_main_process:
        (staging / "trainer_state.json").write_text(json.dumps({"step": step, "world": accelerator.num_processes}))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        store.commit_checkpoint(run_id, step, staging, keep)
    accelerator.wait_for_everyone()


def load_checkpoint(ckpt: Path, accelerator) -> int:
    """Restore weights, optimizer, scheduler, every process's RNG and the step source (registered with
    the accelerator); returns the step the checkpoint was taken after."""
    state = json.loads((ckpt / "trainer_state.json").read_text())
    if state.get("world", 1) != accelerator.num_processes:
        raise ValueError(f"{ckpt}: saved with {state['world']} processes, resuming with {accelerator.num_processes}")
    if not list(ckpt.glob("optimizer*.bin")) and not _sharded(accelerator):
        raise ValueError(f"{ckpt}: no accelerate optimizer state (written by a harness before the accelerate loop, "
                         "or its optimizer state was dropped when the run finished): its weights load "
                         "(init_from, eval), a resume does not")
    accelerator.load_state(str(ckpt))
    return int(state["step"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# -- the loop ----------------------------------------------------------------------------------

def train(cfg: RunConfig, store: Store, run_id: str, model, tokenizer, source: Source, objective: Objective,
          ref: Reference | None = None, accelerator=None) -> dict:
    """Run cfg.train.steps optimizer steps (resuming from the newest checkpoint if cfg.resume)."""
    accelerator = accelerator or make_accelerator(cfg)
    # a step is one global batch: one schedule step per optimizer step (accelerate's default would
    # step it once per process, as if each process's dataloader had its own batches)
    accelerator.step_scheduler_with_optimizer = False
    seed_everything(cfg.train.seed + accelerator.process_index)
    model.train()
    extras = _extra_modules(objective)
    low = sorted({str(p.dtype) for p in trainable_parameters(model, objective) if p.dtype != torch.float32})
    if low:
        warnings.warn(f"trainable weights in {', '.join(low)}: AdamW updates below half their spacing round away "
                      f"(at lr 5e-7 most weights never change). Train fp32 master weights (model.dtype: auto) "
                      f"with train.mixed_precision: bf16 instead", stacklevel=2)
    optimizer = torch.optim.AdamW(trainable_parameters(model, objective), lr=cfg.train.lr,
                                  weight_decay=cfg.train.weight_decay)
    scheduler = make_scheduler(optimizer, cfg)
    model, *extras, optimizer, scheduler = accelerator.prepare(model, *extras, optimizer, scheduler)
    if extras:
        objective.use_modules(extras)  # the prepared (DDP-wrapped) heads: their forward syncs gradients
    accelerator.register_for_checkpointing(source)
    hooks = _register_weight_hooks(accelerator)
    try:
        return _loop(cfg, store, run_id, model, extras, tokenizer, source, objective, ref, accelerator, optimizer,
                     scheduler)
    finally:  # an accelerator used again (tests, notebooks) must not save this run's model or source
        for handle in hooks:
            handle.remove()
        accelerator._custom_objects.remove(source)
        accelerator.free_memory()


def _loop(cfg, store, run_id, model, extras, tokenizer, source, objective, ref, accelerator, optimizer,
          scheduler) -> dict:
    params = [p for group in optimizer.param_groups for p in group["params"]]
    ctx = StepContext(0, cfg, tokenizer, ref, accelerator.device, accelerator, store, run_id)

    start = 1
    ckpt = store.latest_checkpoint(run_id) if cfg.resume else None
    if ckpt is not None:
        done = load_checkpoint(ckpt, accelerator)
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
        n_global, runs, scale = _global_share(mine, accelerator)
        if n_global:  # else every process skips the update alike (all pairs of the step were ties)
            model.train()
            metrics = backward_step(model, objective, runs, ctx, cfg.train.grad_accum, scale, [model, *extras])
            grad_norm = accelerator.clip_grad_norm_(params, cfg.train.max_grad_norm)
            optimizer.step()
            metrics = {"grad_norm": float(grad_norm), **metrics} if mine else {}  # the global gradient's norm
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
            save_checkpoint(store, run_id, step, model, accelerator, cfg.train.keep_checkpoints)
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
