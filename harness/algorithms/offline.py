"""Offline algorithms on a fixed data set: `dpo` (and its loss variants) and `sft`.

The source walks the training examples in a seeded order per epoch; its state (epoch, position)
is saved in every checkpoint. Reference log-probs of the offline pairs are computed once, the
first time a pair is used, and cached by example index; the cache is part of the source state,
so a resumed run reuses the exact numbers instead of recomputing them.
"""
from __future__ import annotations

import random

import torch

from .. import losses
from ..logprobs import build_batch, sequence_logprobs
from ..tasks import load_task
from ..trainer import StepData
from .pairs import check_pool
from .preference import PreferenceObjective, attach_reference


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    order = list(range(n))
    random.Random(f"{seed}/{epoch}").shuffle(order)
    return order


class OfflineSource:
    """Global batches of `cfg.train.batch_size` examples in a seeded order, epoch after epoch.

    With `ref` set (preference data), each example gets `ref_chosen`/`ref_rejected` from the cache,
    computed for the missing ones (split over processes, then shared) in micro-batch chunks."""

    def __init__(self, train: list[dict], evals: list[dict], cfg, tokenizer, ref=None, system: str | None = None):
        if not train:
            raise ValueError("data: no training examples")
        self.train, self.evals = train, evals
        self.cfg, self.tokenizer, self.ref = cfg, tokenizer, ref
        self.system = system  # the task's system prompt, in the reference log-probs as in the objective's
        self.epoch, self.pos = 0, 0
        self.ref_cache: dict[int, tuple[float, float]] = {}
        self.eval_ref: dict[int, tuple[float, float]] = {}
        self._order = epoch_order(len(train), cfg.train.seed, 0)

    def _chunk(self) -> int:
        return max(1, self.cfg.train.batch_size // self.cfg.train.grad_accum)

    def next(self, step: int, model, ctx) -> StepData:
        indices = []
        while len(indices) < self.cfg.train.batch_size:
            if self.pos >= len(self._order):
                if self.ref is not None and self.cfg.oaif.equal_budget:  # build_dpo checked the size; a resume may not
                    check_pool(len(self.train), self.cfg, f"step {step}: the offline pool")
                self.epoch, self.pos = self.epoch + 1, 0
                self._order = epoch_order(len(self.train), self.cfg.train.seed, self.epoch)
            indices.append(self._order[self.pos])
            self.pos += 1
        examples = [{**self.train[i], "index": i} for i in indices]
        if self.ref is not None:
            self._fill_reference(examples, ctx)
        metrics = {"epoch": self.epoch + self.pos / len(self.train), "source/pairs": float(len(examples))}
        if self.ref is not None and self.cfg.oaif.tie_policy == "skip":
            # skip: the pool holds no ties (pipelines/pool.py), so every pair trained on is decided
            metrics["source/decided"] = float(len(examples))
        return StepData(examples, metrics)

    def _fill_reference(self, examples: list[dict], ctx) -> None:
        missing = list({e["index"]: e for e in examples if e["index"] not in self.ref_cache}.values())
        if missing:
            mine = [dict(e) for e in ctx.shard(missing)]
            attach_reference(mine, self.ref, self.tokenizer, self.cfg.data, self._chunk(), self.system)
            found = [(e["index"], e["ref_chosen"], e["ref_rejected"]) for e in mine]
            if ctx.world > 1:
                from accelerate.utils import gather_object

                found = gather_object(found)
            for i, c, r in found:
                self.ref_cache[int(i)] = (c, r)
        for e in examples:
            e["ref_chosen"], e["ref_rejected"] = self.ref_cache[e["index"]]

    def eval_examples(self) -> list[dict]:
        """Held-out examples (with cached reference log-probs for preference data)."""
        out = [{**e, "index": i} for i, e in enumerate(self.evals)]
        if self.ref is not None and out:
            todo = [e for e in out if e["index"] not in self.eval_ref]
            attach_reference(todo, self.ref, self.tokenizer, self.cfg.data, self._chunk(), self.system)
            for e in todo:
                self.eval_ref[e["index"]] = (e["ref_chosen"], e["ref_rejected"])
            for e in out:
                e["ref_chosen"], e["ref_rejected"] = self.eval_ref[e["index"]]
        return out

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos, "n_train": len(self.train),
                "ref": {str(k): list(v) for k, v in self.ref_cache.items()},
                "eval_ref": {str(k): list(v) for k, v in self.eval_ref.items()}}

    def load_state_dict(self, state: dict) -> None:
        if state.get("n_train", len(self.train)) != len(self.train):
            raise ValueError(f"resume: the run was trained on {state['n_train']} examples, the data now has "
                             f"{len(self.train)}; resume with the same data settings")
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
        self._order = epoch_order(len(self.train), self.cfg.train.seed, self.epoch)
        self.ref_cache = {int(k): tuple(v) for k, v in state.get("ref", {}).items()}
        self.eval_ref = {int(k): tuple(v) for k, v in state.get("eval_ref", {}).items()}


class SFTObjective:
    """Negative log-likelihood per response token (mean over sequences) of `response` given `prompt`,
    with the task's system prompt in front as the sampler puts it."""

    def __init__(self, system: str | None = None):
        self.system = system

    def __call__(self, model, examples: list[dict], ctx) -> tuple[torch.Tensor, dict]:
        batch = build_batch(ctx.tokenizer, [e["prompt"] for e in examples], [e["response"] for e in examples],
                            ctx.cfg.data, system=self.system)
        logps, n = sequence_logprobs(model, batch)
        nll = losses.sft_nll(logps, n)
        with torch.no_grad():
            metrics = {"nll": float(nll.mean()), "logp_per_token": float(-nll.mean()),
                       "response_len": float(n.float().mean()), "n_tokens": float(n.sum())}
        return nll.mean(), metrics


def build_dpo(cfg, store, run_id, model, tokenizer, ref, home=None):
    """Offline preference optimisation with `cfg.loss.kind` in dpo | ipo | slic | cdpo | rdpo | soft."""
    if cfg.loss.kind not in losses.PREFERENCE_LOSSES:
        raise ValueError(f"loss.kind: {cfg.loss.kind!r} is not a preference loss for algo dpo "
                         f"({', '.join(losses.PREFERENCE_LOSSES)})")
    if ref is None:
        raise ValueError("algo dpo needs a reference model")
    d = cfg.data
    task = load_task(d.task)
    train, evals = task.preference_splits(path=d.path, eval_fraction=d.eval_fraction, max_train=d.max_train,
                                          max_eval=d.max_eval)
    check_pool(len(train), cfg, f"data.path {d.path or task.name} (after data.eval_fraction {d.eval_fraction})")
    system = task.spec.system
    return OfflineSource(train, evals, cfg, tokenizer, ref, system), PreferenceObjective(system=system)


def sft_examples(task, split: str, path: str | None, cfg) -> list[dict]:
    """SFT targets: the task's reference answers, or the chosen responses of its preference data."""
    d = cfg.data
    if task.spec.data.prompts and path is None:
        rows = [r for r in task.prompts(split) if r.get("reference")]
        limit = d.max_train if split == "train" else d.max_eval
        return [{"prompt": r["prompt"], "response": r["reference"], "id": r["id"]} for r in rows][:limit]
    train, evals = task.preference_splits(path=path, eval_fraction=d.eval_fraction, max_train=d.max_train,
                                          max_eval=d.max_eval)
    return [{"prompt": r["prompt"], "response": r["chosen"], "id": r["id"]} for r in (train if split == "train" else evals)]


def build_sft(cfg, store, run_id, model, tokenizer, ref=None, home=None):
    """Supervised fine-tuning (NLL) on reference or chosen responses: a warm start before alignment."""
    task = load_task(cfg.data.task)
    train = sft_examples(task, "train", cfg.data.path, cfg)
    evals = sft_examples(task, "eval", cfg.data.path, cfg)
    if not train:
        raise ValueError(f"data.task {task.name}: no responses to fine-tune on (no reference answers or chosen responses)")
    return OfflineSource(train, evals, cfg, tokenizer, ref=None), SFTObjective(system=task.spec.system)
