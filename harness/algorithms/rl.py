"""`algo: rlhf`: RL with a KL penalty against a scalar reward, through the shared trainer core.

Each step takes `train.batch_size` task prompts (seeded order), samples `rl.k` responses per prompt
from the current policy with the shared sampling backend, scores them with `rl.reward_model` (any
judge with `.score`: `rm:<run-id>` for RLHF/RLAIF, a rule judge, ...) and stores every sample with
its reward. Then, per `rl.method`:

- `rloo` (Ahmadian et al. 2024; TRL's RLOOTrainer): the KL to the reference is folded into the
  reward at the SEQUENCE level, r - kl_coef * sum_t (logp_t - ref_t); the advantage of each sample
  is its reward minus the mean reward of the other k-1 samples of its prompt; the loss is the
  sequence-level clipped REINFORCE loss.
- `ppo` (Stiennon et al. 2020 / Ziegler et al. 2019): the KL enters PER TOKEN (-kl_coef * log-ratio
  on every token, the score on the last one); a value head on the policy's last hidden state gives
  V_t; GAE(gamma, lam) gives advantages (whitened) and returns; the loss is the clipped surrogate +
  vf_coef * clipped value loss, for `rl.ppo_epochs` optimizer steps per rollout.

Rollout log-probs, reference log-probs and values are computed here with the model in eval mode and
no gradients; the objective recomputes the policy's with gradients. Resume: the trainer restores
the RNG and this source's position (and a PPO rollout still being trained on), so an interrupted
step samples the same responses again.
"""
from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from .. import losses
from ..evaluation.kl import KL_METRIC, exact_policy_samples, k3_per_sequence
from ..logprobs import _parts, collate, encode_prompt, position_ids
from ..records import prompt_text
from ..trainer import StepData


# -- one forward over prompt+response rows, response positions only ------------------------------

@dataclass
class ResponseForward:
    logps: torch.Tensor  # [N, R] log p(response token t), left-aligned, 0 where mask is 0
    mask: torch.Tensor  # [N, R] float, 1 on real response tokens
    entropy: torch.Tensor | None = None  # [N, R] entropy of the next-token distribution
    values: torch.Tensor | None = None  # [N, R] V(state before token t)


def response_forward(model, batch: dict, value_head=None, with_entropy: bool = False) -> ResponseForward:
    """Log-probs (and entropy, values) at the response tokens only, packed to [N, R].

    Only the positions that predict response tokens go through the LM head (49k-wide logits for the
    prompt positions would be most of the memory), as in harness.logprobs."""
    device = next(model.parameters()).device
    input_ids = batch["input_ids"].to(device)
    attention = batch["attention_mask"].to(device)
    target = batch["response_mask"].to(device)[:, 1:].bool()  # position t predicts token t+1
    labels = input_ids[:, 1:][target]
    inputs = dict(input_ids=input_ids, attention_mask=attention, position_ids=position_ids(attention), use_cache=False)
    parts = _parts(model)
    if parts is not None:
        decoder, head, softcap = parts
        hidden = decoder(**inputs).last_hidden_state[:, :-1][target]  # [M, H]
        logits = head(hidden)
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
    else:
        out = model(**inputs, output_hidden_states=True)
        hidden = out.hidden_states[-1][:, :-1][target]
        logits = out.logits[:, :-1][target]
    logits = logits.float()
    flat_logps = -F.cross_entropy(logits, labels, reduction="none")
    rows = torch.nonzero(target, as_tuple=True)[0]
    cols = (target.long().cumsum(-1) - 1)[target]  # index of each token within its response
    n = input_ids.shape[0]
    width = int(cols.max().item()) + 1 if cols.numel() else 1

    def pack(flat: torch.Tensor) -> torch.Tensor:
        out = torch.zeros((n, width), dtype=flat.dtype, device=flat.device)
        return out.index_put((rows, cols), flat)

    mask = pack(torch.ones_like(flat_logps))
    entropy = pack(losses.entropy_from_logits(logits)) if with_entropy else None
    values = pack(value_head(hidden).squeeze(-1).float()) if value_head is not None else None
    return ResponseForward(pack(flat_logps), mask, entropy, values)


def pad_rows(rows: Sequence[Sequence[float]], width: int, device) -> torch.Tensor:
    out = torch.zeros((len(rows), width), dtype=torch.float32, device=device)
    for i, r in enumerate(rows):
        if r:
            out[i, :len(r)] = torch.tensor(r[:width], dtype=torch.float32)
    return out


def _rows(t: torch.Tensor, mask: torch.Tensor) -> list[list[float]]:
    return [t[i, :int(mask[i].sum())].tolist() for i in range(t.shape[0])]


class ValueHead(torch.nn.Module):
    """V(s) = w . h + b on the policy's last hidden state; starts at 0 so the first GAE is plain returns."""

    def __init__(self, hidden_size: int, dtype=torch.float32):
        super().__init__()
        self.linear = torch.nn.Linear(hidden_size, 1, dtype=dtype)
        torch.nn.init.zeros_(self.linear.weight)
        torch.nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(hidden.to(self.linear.weight.dtype))


# -- the source: sample, score, advantages ---------------------------------------------------------

class RLSource:
    def __init__(self, cfg, store, run_id: str, sampler, scorer, prompts: Sequence[dict], tokenizer,
                 value_head=None, system: str | None = None, task_name: str = ""):
        if not prompts:
            raise ValueError(f"data.task: task {task_name!r} has no training prompts")
        self.cfg, self.store, self.run_id = cfg, store, run_id
        self.sampler, self.scorer, self.tokenizer = sampler, scorer, tokenizer
        self.prompts = list(prompts)
        self.value_head, self.system = value_head, system
        self.position = 0
        self.rollout: dict | None = None  # PPO: {"step", "examples", "metrics"} trained on for ppo_epochs steps

    def _order(self, epoch: int) -> list[int]:
        idx = list(range(len(self.prompts)))
        random.Random(f"{self.cfg.train.seed}:{epoch}").shuffle(idx)
        return idx

    def take(self, n: int) -> list[dict]:
        out = []
        while len(out) < n:
            epoch, offset = divmod(self.position, len(self.prompts))
            out.append(self.prompts[self._order(epoch)[offset]])
            self.position += 1
        return out

    def state_dict(self) -> dict:
        return {"position": self.position, "rollout": self.rollout}

    def load_state_dict(self, state: dict) -> None:
        self.position = int(state["position"])
        self.rollout = state.get("rollout")

    def next(self, step: int, model, ctx) -> StepData:
        rl = self.cfg.rl
        if rl.method == "ppo" and self.rollout is not None and step < self.rollout["step"] + rl.ppo_epochs:
            # another PPO epoch on the same rollout: the ratio now moves away from 1 and clipping bites
            return StepData(self.rollout["examples"], {**self.rollout["metrics"], "source/rollout_reused": 1.0},
                            sharded=True)
        batch = self.take(self.cfg.train.batch_size)
        mine = list(range(len(batch)))[ctx.rank::ctx.world]  # each process samples its own prompts
        rows_in = [batch[i] for i in mine]
        t0 = time.perf_counter()
        self.sampler.update(model, step)
        samples = self.sampler.sample([r["prompt"] for r in rows_in], rl.k)
        t_sample = time.perf_counter() - t0

        flat = [(gi, r, j, s) for gi, r, group in zip(mine, rows_in, samples) for j, s in enumerate(group)]
        t1 = time.perf_counter()
        scores = self.scorer.score([r["prompt"] for _, r, _, _ in flat], [s.text for *_, s in flat],
                                   [r.get("reference") for _, r, _, _ in flat])
        bad = [i for i, v in enumerate(scores) if v is None or not math.isfinite(float(v))]
        if bad:
            raise ValueError(f"rl.reward_model: {getattr(self.scorer, 'annotator', None) and self.scorer.annotator.id} "
                             f"gave no finite score for {len(bad)} of {len(scores)} samples "
                             f"(e.g. {flat[bad[0]][3].text[:80]!r})")
        t_score = time.perf_counter() - t1

        prompt_ids = [encode_prompt(self.tokenizer, r["prompt"], self.cfg.data.max_prompt_tokens, self.system)
                      for _, r, _, _ in flat]
        response_ids = [list(s.token_ids) for *_, s in flat]
        t2 = time.perf_counter()
        pol, ref = self._rollout_forward(model, ctx, prompt_ids, response_ids)
        t_forward = time.perf_counter() - t2
        device = pol.logps.device
        score_t = torch.tensor([float(v) for v in scores], dtype=torch.float32, device=device)

        examples = [{"prompt_ids": p, "response_ids": r} for p, r in zip(prompt_ids, response_ids)]
        if rl.method == "rloo":
            total, kl = losses.kl_penalised_rewards(score_t, pol.logps, ref.logps, pol.mask, rl.kl_coef)
            adv = losses.rloo_advantages(total, rl.k)
            for e, a, old_row, ref_row in zip(examples, adv.tolist(), _rows(pol.logps, pol.mask),
                                              _rows(ref.logps, pol.mask)):
                e.update(advantage=a, old_logps=old_row, ref_logps=ref_row)
        else:
            token_rewards, kl = losses.ppo_token_rewards(score_t, pol.logps, ref.logps, pol.mask, rl.kl_coef)
            total = losses.masked_sum(token_rewards, pol.mask)
            if rl.whiten_rewards:
                token_rewards = losses.masked_whiten(token_rewards, pol.mask, shift_mean=False)
            adv, returns = losses.gae_advantages(token_rewards, pol.values, pol.mask, rl.gamma, rl.lam)
            adv = losses.masked_whiten(adv, pol.mask)
            for i, e in enumerate(examples):
                n_i = int(pol.mask[i].sum())
                e.update(advantages=adv[i, :n_i].tolist(), returns=returns[i, :n_i].tolist(),
                         old_values=pol.values[i, :n_i].tolist(), old_logps=pol.logps[i, :n_i].tolist(),
                         ref_logps=ref.logps[i, :n_i].tolist())

        rows = []
        for (gi, r, j, s), v, kl_i, tot in zip(flat, scores, kl.tolist(), total.tolist()):
            row = s.as_row(prompt_text(r["prompt"]), gi * rl.k + j, policy=self.run_id,
                           meta={"logratio_per_seq": kl_i, "reward_total": tot, "prompt_id": r.get("id")})
            row["reward"] = float(v)
            rows.append(row)
        self.store.add_samples(self.run_id, step, rows)

        n_tok = [s.n_tokens for *_, s in flat]
        metrics = {
            "reward_mean": float(score_t.mean()),
            "reward_std": float(score_t.std()) if len(flat) > 1 else 0.0,
            "reward_total_mean": float(total.mean()),  # with the KL penalty: what is maximised
            # k1 = sum_t (logp - ref_logp): what the reward is penalised by (kl_coef x this); not the KL column
            "reward_logratio_per_seq": float(kl.mean()),
            "sample/len_mean": sum(n_tok) / len(n_tok),
            "sample/truncated_rate": sum(s.truncated for *_, s in flat) / len(flat),
            "source/sample_s": t_sample,
            "source/score_s": t_score,
            "source/forward_s": t_forward,
        }
        if exact_policy_samples(self.cfg.sampling):  # the one KL: k3 on the rollout, the policy's own samples
            metrics[KL_METRIC] = float(k3_per_sequence(pol.logps, ref.logps, pol.mask).mean())
        if rl.method == "ppo" and rl.ppo_epochs > 1:
            self.rollout = {"step": step, "examples": examples, "metrics": metrics}
        return StepData(examples, metrics, sharded=True)

    @torch.no_grad()
    def _rollout_forward(self, model, ctx, prompt_ids, response_ids):
        """Policy log-probs (+ values) and reference log-probs of the samples, eval mode, chunked."""
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        size = max(1, self.cfg.sampling.batch_size)
        pols, refs = [], []
        was_training = model.training
        model.eval()
        try:
            for i in range(0, len(prompt_ids), size):
                batch = collate(prompt_ids[i:i + size], response_ids[i:i + size], pad, "right")
                pols.append(response_forward(model, batch, self.value_head))
                if ctx.ref is None:
                    raise ValueError("algo rlhf: needs a reference model for the KL penalty")
                with ctx.ref.active() as m:
                    ref_training = m.training
                    m.eval()
                    try:
                        refs.append(response_forward(m, batch))
                    finally:
                        m.train(ref_training)
        finally:
            model.train(was_training)
        return _cat(pols), _cat(refs)


def _cat(parts: list[ResponseForward]) -> ResponseForward:
    width = max(p.mask.shape[1] for p in parts)

    def cat(name):
        ts = [getattr(p, name) for p in parts]
        if ts[0] is None:
            return None
        return torch.cat([F.pad(t, (0, width - t.shape[1])) for t in ts])

    return ResponseForward(cat("logps"), cat("mask"), cat("entropy"), cat("values"))


# -- the objective ---------------------------------------------------------------------------------

class RLObjective:
    """Loss on a micro-batch of scored samples; `modules()` hands the PPO value head to the trainer
    (optimised, all-reduced and checkpointed with the policy)."""

    def __init__(self, cfg, tokenizer, value_head=None):
        self.cfg, self.value_head = cfg, value_head
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def modules(self):
        return [self.value_head] if self.value_head is not None else []

    def use_modules(self, prepared: list) -> None:
        """The trainer's prepared (e.g. DDP-wrapped) value head, whose forward syncs its gradients."""
        (self.value_head,) = prepared

    def __call__(self, model, examples: list[dict], ctx) -> tuple[torch.Tensor, dict]:
        rl = self.cfg.rl
        batch = collate([e["prompt_ids"] for e in examples], [e["response_ids"] for e in examples], self.pad, "right")
        out = response_forward(model, batch, self.value_head, with_entropy=True)
        mask, width, device = out.mask, out.mask.shape[1], out.logps.device
        old = pad_rows([e["old_logps"] for e in examples], width, device)
        metrics: dict[str, float] = {}
        if rl.method == "rloo":
            adv = torch.tensor([e["advantage"] for e in examples], dtype=torch.float32, device=device)
            per_seq, clipped = losses.rloo_loss(losses.masked_sum(out.logps, mask), losses.masked_sum(old, mask),
                                                adv, rl.clip_range)
            loss = per_seq.mean()
            metrics["clip_frac"] = float(clipped.mean())
            metrics["advantage_abs"] = float(adv.abs().mean())
        else:
            adv = pad_rows([e["advantages"] for e in examples], width, device)
            returns = pad_rows([e["returns"] for e in examples], width, device)
            old_values = pad_rows([e["old_values"] for e in examples], width, device)
            pg, clip_frac = losses.ppo_policy_loss(out.logps, old, adv, mask, rl.clip_range)
            vf, vf_clip = losses.ppo_value_loss(out.values, old_values, returns, mask, rl.clip_range)
            loss = pg.mean() + rl.vf_coef * vf.mean()
            metrics.update({"clip_frac": float(clip_frac.mean()), "policy_loss": float(pg.detach().mean()),
                            "value_loss": float(vf.detach().mean()), "value_clip_frac": float(vf_clip.mean()),
                            "value_mean": float(losses.masked_mean(out.values.detach(), mask).mean())})
        with torch.no_grad():
            log_ratio = out.logps.detach() - old
            metrics.update({
                # the KL column (kl_nats_per_seq) comes from the source, on the rollout: during later PPO
                # epochs these samples are no longer the current policy's
                "entropy": float(losses.masked_mean(out.entropy, mask).mean()),
                "approx_kl_old": float(losses.masked_mean(0.5 * log_ratio ** 2, mask).mean()),
                "response_len": float(mask.sum(-1).mean()),
                "n_tokens": float(mask.sum()),
                "n_samples": float(len(examples)),
            })
        return loss, metrics


# -- builder ---------------------------------------------------------------------------------------

def load_scorer(cfg, home, device: str):
    """The judge named by rl.reward_model; it must give scalar scores (`.score`)."""
    from judges.registry import load_judge

    name = cfg.rl.reward_model
    if not name:
        raise ValueError("rl.reward_model: name a judge that gives scalar rewards, e.g. rm:<reward-model-run-id> "
                         "or rule:shorter")
    judge = load_judge(name, home, device)
    if not callable(getattr(judge, "score", None)):
        raise ValueError(f"rl.reward_model: judge {name!r} gives pairwise verdicts only, no scalar score; "
                         "RL needs a reward model (rm:<run-id>) or a scoring rule")
    return judge


METHODS = ("rloo", "ppo")  # rl.method: the policy-gradient estimator RLSource/RLObjective run
# (key, test, what the key must be): the `rl:` section's value checks
_RANGES = (
    ("kl_coef", lambda v: v >= 0, ">= 0"),
    ("clip_range", lambda v: v > 0, "> 0"),
    ("vf_coef", lambda v: v >= 0, ">= 0"),
    ("gamma", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("lam", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("ppo_epochs", lambda v: v >= 1, ">= 1"),
)


def check_config(cfg, bad) -> None:
    """The `rl:` section (`bad(key, message)` raises); run by config.validate for every config."""
    rl = cfg.rl
    if rl.method not in METHODS:
        bad("rl.method", f"must be one of {', '.join(METHODS)}, got {rl.method!r}")
    if rl.k < 1 or (rl.method == "rloo" and rl.k < 2):
        bad("rl.k", f"RLOO needs at least 2 samples per prompt, got {rl.k}" if rl.method == "rloo" else "must be >= 1")
    for key, ok, what in _RANGES:
        if not ok(getattr(rl, key)):
            bad(f"rl.{key}", f"must be {what}, got {getattr(rl, key)!r}")


def build(cfg, store, run_id, model, tokenizer, ref, home):
    from ..models import pick_device
    from ..sampling import make_sampler
    from ..tasks import load_task

    if ref is None:
        raise ValueError("algo rlhf: needs a reference model for the KL penalty")
    task = load_task(cfg.data.task)
    prompts = [p if isinstance(p, dict) else {"prompt": p} for p in task.prompts(cfg.data.split)]
    if cfg.data.max_train:
        prompts = prompts[:cfg.data.max_train]
    scorer = load_scorer(cfg, home, str(pick_device(cfg.model.device)))
    sampler = make_sampler(cfg.sampling, model, tokenizer, cfg.data, system=task.spec.system)
    value_head = None
    if cfg.rl.method == "ppo":
        param = next(model.parameters())
        value_head = ValueHead(model.config.hidden_size, dtype=param.dtype).to(param.device)
    source = RLSource(cfg, store, run_id, sampler, scorer, prompts, tokenizer, value_head=value_head,
                      system=task.spec.system, task_name=cfg.data.task)
    return source, RLObjective(copy.deepcopy(cfg), tokenizer, value_head)
