"""`algo: reward_model`: a scalar reward model trained with the Bradley-Terry loss.

Pairs come from the label store (`reward_model.annotators`: human ids give the RLHF reward model,
AI judge ids the RLAIF one) or, with no annotators named, from the task's preference data. The
model is `model.name` loaded with a one-label sequence-classification head (for the policy's
backbone that is the decoder + a linear score on the last token; any HF classifier works), LoRA
optional. Held-out pairs are split off by a hash of the pair, so the split never depends on order.

Each evaluation logs accuracy, Brier score and BT loss as eval metrics, and stores a
`reward_model_eval` result with accuracy, expected calibration error and the reliability bins. The
trained run is a judge by name: `rm:<run-id>` (judges/reward_model.py).
"""
from __future__ import annotations

import math
import random
from dataclasses import replace

import torch

from .. import losses
from ..logprobs import build_batch
from ..records import content_hash
from ..store.filters import LabelFilter
from ..trainer import StepData

HH_HUMAN = "\n\nHuman:"


# -- scoring (shared with the reward-model judge) ------------------------------------------------

def as_model_prompt(prompt):
    """HH-style transcripts ('\\n\\nHuman: ... \\n\\nAssistant:') become chat messages, so they are
    formatted with the chat template like any other prompt; anything else passes unchanged."""
    if isinstance(prompt, str) and prompt.lstrip("\n").startswith(HH_HUMAN.strip("\n")):
        from ..data import parse_hh

        messages = parse_hh(prompt if prompt.startswith("\n\n") else "\n\n" + prompt.lstrip("\n"))
        if messages and messages[-1]["role"] == "assistant" and not messages[-1]["content"]:
            messages = messages[:-1]
        if messages:
            return messages
    return prompt


def reward_scores(model, tokenizer, prompts, responses, data_cfg) -> torch.Tensor:
    """One scalar per (prompt, response): the sequence-classification logit. Differentiable.

    Rows are right-padded (the classifier reads the last non-pad token, and positions then need
    no mask arithmetic). Returns float32 [N]."""
    cfg = replace(data_cfg, padding_side="right")
    batch = build_batch(tokenizer, [as_model_prompt(p) for p in prompts], list(responses), cfg)
    device = next(model.parameters()).device
    out = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device))
    logits = out.logits
    if logits.dim() != 2 or logits.shape[-1] != 1:
        raise ValueError(f"reward model: expected one score per sequence, got logits of shape {tuple(logits.shape)} "
                         "(a reward model needs num_labels=1)")
    return logits[:, 0].float()


# -- calibration -------------------------------------------------------------------------------

def calibration(p_pred, targets, n_bins: int = 10) -> dict:
    """Held-out accuracy and top-label calibration of p(A better) = sigmoid(r_A - r_B).

    `targets` are the labels' p(A better) (1/0 hard, in between soft). Confidence is max(p, 1-p),
    its correctness the target's probability of the predicted side; bins cover [0.5, 1].
    Accuracy counts decisive targets only (target != 0.5). ECE = sum_b n_b/N |conf_b - acc_b|."""
    p_pred = [float(p) for p in p_pred]
    targets = [float(t) for t in targets]
    n = len(p_pred)
    decisive = [(p, t) for p, t in zip(p_pred, targets) if t != 0.5]
    acc = (sum(1 for p, t in decisive if (p > 0.5) == (t > 0.5) and p != 0.5) / len(decisive)) if decisive else math.nan
    brier = sum((p - t) ** 2 for p, t in zip(p_pred, targets)) / n if n else math.nan
    bins = [{"lo": 0.5 + 0.5 * b / n_bins, "hi": 0.5 + 0.5 * (b + 1) / n_bins, "n": 0, "conf_sum": 0.0,
             "correct_sum": 0.0} for b in range(n_bins)]
    for p, t in zip(p_pred, targets):
        conf = max(p, 1 - p)
        correct = t if p >= 0.5 else 1 - t
        b = min(n_bins - 1, int((conf - 0.5) / 0.5 * n_bins + 1e-9))  # 1e-9: 0.7 sits in [0.7, 0.8)
        bins[b]["n"] += 1
        bins[b]["conf_sum"] += conf
        bins[b]["correct_sum"] += correct
    ece = 0.0
    out_bins = []
    for b in bins:
        if b["n"]:
            conf, accb = b["conf_sum"] / b["n"], b["correct_sum"] / b["n"]
            ece += b["n"] / n * abs(conf - accb)
        else:
            conf = accb = None
        out_bins.append({"lo": round(b["lo"], 4), "hi": round(b["hi"], 4), "n": b["n"], "confidence": conf,
                         "accuracy": accb})
    return {"accuracy": acc, "n_decisive": len(decisive), "n": n, "ece": ece if n else math.nan, "brier": brier,
            "bins": out_bins}


# -- data --------------------------------------------------------------------------------------

_VOTE = {"A": 1.0, "B": 0.0, "tie": 0.5}


def store_examples(store, annotators: list[str], dataset: str | None, soft: bool) -> tuple[list[dict], dict]:
    """Pairs labelled by `annotators` (ids) -> examples {prompt, response_a, response_b, p, pair_id}.

    Several labels of one pair (several annotators, both orders) are averaged: hard mode votes
    (A=1, B=0, tie=.5) and drops pairs that come out tied; soft mode averages p(A better) where
    the label gives one. Cache-hit copies and unparsed labels are left out."""
    df = store.labels_df(LabelFilter(annotators=list(annotators), verdicts=("A", "B", "tie"), cached=False,
                                     dataset=dataset or None))
    if df.empty:
        known = sorted({a["annotator_id"] for a in store.annotators()})
        raise ValueError(f"reward_model.annotators: no usable labels by {annotators}"
                         + (f" on dataset {dataset!r}" if dataset else "")
                         + f" in {store.db_path}; annotators in the store: {', '.join(known) or '(none)'}")
    examples, ties = [], 0
    for pair_id, g in df.groupby("pair_id", sort=False):
        if soft:
            vals = [float(r.p_a) if r.p_a is not None and not math.isnan(r.p_a) else _VOTE[r.verdict]
                    for r in g.itertuples()]
            target = sum(vals) / len(vals)
        else:
            vote = sum(_VOTE[v] for v in g["verdict"]) / len(g)
            if vote == 0.5:
                ties += 1
                continue
            target = 1.0 if vote > 0.5 else 0.0
        r = g.iloc[0]
        examples.append({"prompt": r["prompt"], "response_a": r["response_a"], "response_b": r["response_b"],
                         "p": target, "pair_id": pair_id})
    return examples, {"n_labels": int(len(df)), "n_pairs": len(examples), "n_tied_skipped": ties}


def _task_row(r: dict, soft: bool) -> dict:
    """A task / data.path preference row -> example. Hard labels: chosen is better (target 1), whatever
    `p` says; soft labels: the row's `p` (P(chosen better), default 1) is the BT target."""
    p = r.get("p")  # the data loader has checked it is a probability
    return {"prompt": r["prompt"], "response_a": r["chosen"], "response_b": r["rejected"],
            "p": float(p) if soft and p is not None else 1.0,
            "pair_id": r.get("id") or content_hash(r["prompt"], r["chosen"], r["rejected"])}


def task_split(cfg) -> tuple[list[dict], list[dict], dict]:
    """(train, held-out) from the task's (or data.path's) preference data, split the way every other
    algorithm splits it (`Task.preference_splits`). Chosen is A; the target is 1 unless
    `reward_model.labels: soft`, which reads the rows' `p` (default 1)."""
    from ..tasks import load_task

    task = load_task(cfg.data.task)
    train, held = task.preference_splits(path=cfg.data.path, eval_fraction=cfg.data.eval_fraction,
                                         max_train=cfg.data.max_train, max_eval=cfg.data.max_eval, seed=cfg.train.seed)
    soft = _soft(cfg.reward_model)
    return ([_task_row(r, soft) for r in train], [_task_row(r, soft) for r in held],
            {"n_pairs": len(train) + len(held), "labels": cfg.reward_model.labels})


LABEL_TARGETS = ("hard", "soft")  # reward_model.labels: majority verdict, or mean p(A better) as the BT target


def check_config(cfg, bad) -> None:
    """The `reward_model:` section (`bad(key, message)` raises); run by config.validate for every config."""
    rmc = cfg.reward_model
    if rmc.labels not in LABEL_TARGETS:
        bad("reward_model.labels", f"must be one of {', '.join(LABEL_TARGETS)}, got {rmc.labels!r}")
    if rmc.calibration_bins < 1:
        bad("reward_model.calibration_bins", "must be >= 1")


def _soft(rmc) -> bool:
    if rmc.labels not in LABEL_TARGETS:
        raise ValueError(f"reward_model.labels: {rmc.labels!r} is not one of {', '.join(LABEL_TARGETS)}")
    return rmc.labels == "soft"


def split_examples(examples: list[dict], data_cfg, seed: int) -> tuple[list[dict], list[dict]]:
    """Held-out split by a hash of the pair id (stable whatever the order), then max_train/max_eval
    caps applied after a seeded shuffle."""
    frac = data_cfg.eval_fraction
    train, held = [], []
    for e in examples:
        bucket = int(content_hash("rm-split", str(e["pair_id"])), 16) % 10_000
        (held if bucket < frac * 10_000 else train).append(e)
    rng = random.Random(seed)
    rng.shuffle(train)
    rng.shuffle(held)
    if data_cfg.max_train is not None:
        train = train[:data_cfg.max_train]
    if data_cfg.max_eval is not None:
        held = held[:data_cfg.max_eval]
    return train, held


# -- source and objective ----------------------------------------------------------------------

class PairSource:
    """The training pairs in a seeded order, `batch_size` per step, reshuffled every epoch."""

    def __init__(self, train: list[dict], held: list[dict], batch_size: int, seed: int, info: dict):
        if not train:
            raise ValueError("reward_model: no training pairs (check reward_model.annotators / data.max_train)")
        self.train, self.held, self.batch_size, self.seed, self.info = train, held, batch_size, seed, info
        self.pos, self.epoch = 0, 0
        self._order = self._shuffled(0)

    def _shuffled(self, epoch: int) -> list[int]:
        order = list(range(len(self.train)))
        random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return order

    def next(self, step, model, ctx) -> StepData:
        out = []
        while len(out) < self.batch_size:
            if self.pos >= len(self._order):
                self.epoch += 1
                self.pos = 0
                self._order = self._shuffled(self.epoch)
            out.append(self.train[self._order[self.pos]])
            self.pos += 1
        return StepData(out, {"epoch": float(self.epoch)})

    def eval_examples(self) -> list[dict]:
        return self.held

    def state_dict(self) -> dict:
        return {"pos": self.pos, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.pos, self.epoch = int(state["pos"]), int(state["epoch"])
        self._order = self._shuffled(self.epoch)


class BTObjective:
    """Bradley-Terry loss on (r_A, r_B) against the label's p(A better).

    Evaluation calls (no grad) are also collected; when a full pass over this process's held-out
    share has been seen, the calibration result is stored (`reward_model_eval`)."""

    def __init__(self, cfg, held: list[dict], info: dict):
        self.cfg, self.held, self.info = cfg, held, info
        self._seen: list[tuple[float, float]] = []

    def __call__(self, model, examples: list[dict], ctx) -> tuple[torch.Tensor, dict]:
        n = len(examples)
        prompts = [e["prompt"] for e in examples]
        scores = reward_scores(model, ctx.tokenizer, prompts * 2, [e["response_a"] for e in examples]
                               + [e["response_b"] for e in examples], self.cfg.data)
        ra, rb = scores[:n], scores[n:]
        p = torch.tensor([float(e["p"]) for e in examples], dtype=ra.dtype, device=ra.device)
        per_pair, _, _ = losses.bt_loss(ra, rb, p=p)
        loss = per_pair.mean()
        with torch.no_grad():
            p_pred = torch.sigmoid(ra - rb)
            decisive = p != 0.5
            correct = ((p_pred > 0.5) == (p > 0.5)) & decisive & (p_pred != 0.5)
            sign = torch.where(p >= 0.5, 1.0, -1.0)
            metrics = {
                "reward_acc": float((correct.float() + 0.5 * (~decisive).float()).mean()),
                "brier": float(((p_pred - p) ** 2).mean()),
                "reward_margin": float(((ra - rb) * sign).mean()),
                "reward_mean": float(scores.mean()),
                "n_pairs": float(n),
                "n_correct": float(correct.sum()),
                "n_decisive": float(decisive.sum()),
            }
        if not torch.is_grad_enabled():
            self._collect(p_pred.tolist(), p.tolist(), ctx)
        return loss, metrics

    def _collect(self, preds, targets, ctx) -> None:
        self._seen += list(zip(preds, targets))
        if len(self._seen) < len(ctx.shard(self.held)):
            return
        seen, self._seen = self._seen, []
        if ctx.world > 1:
            from accelerate.utils import gather_object

            seen = gather_object(seen)
        if ctx.rank != 0 or ctx.store is None:
            return
        result = calibration([s[0] for s in seen], [s[1] for s in seen], self.cfg.reward_model.calibration_bins)
        rmc = self.cfg.reward_model
        result.update({"step": ctx.step, "source": "store" if rmc.annotators else f"task:{self.cfg.data.task}",
                       "annotators": list(rmc.annotators), "dataset": rmc.dataset, "labels": rmc.labels,
                       "model": self.cfg.model.name, **{f"data_{k}": v for k, v in self.info.items()}})
        ctx.store.add_result("reward_model_eval", result, name=f"{ctx.run_id}@{ctx.step}", run_id=ctx.run_id,
                             task=self.cfg.data.task, judge=f"rm:{ctx.run_id}")


def _score_head_trainable(model) -> bool:
    """With LoRA the new classifier head must train too (peft's SEQ_CLS task keeps a trainable copy);
    a head left frozen would make the BT loss train only the adapters around a random projection."""
    named = [(n, p) for n, p in model.named_parameters() if any(k in n.split(".") for k in ("score", "classifier"))]
    if not any(p.requires_grad for _, p in named):
        for _, p in named:
            p.requires_grad_(True)
    return any(p.requires_grad for _, p in named)


def build(cfg, store, run_id, model, tokenizer, ref, home):
    rmc = cfg.reward_model
    if rmc.annotators:
        examples, info = store_examples(store, list(rmc.annotators), rmc.dataset, soft=_soft(rmc))
        train, held = split_examples(examples, cfg.data, cfg.train.seed)
    else:
        train, held, info = task_split(cfg)
    info.update({"n_train": len(train), "n_eval": len(held)})
    if cfg.model.lora.enabled and not _score_head_trainable(model):
        raise ValueError(f"model {cfg.model.name!r}: no 'score'/'classifier' head found to train with LoRA")
    source = PairSource(train, held, cfg.train.batch_size, cfg.train.seed, info)
    return source, BTObjective(cfg, held, info)
