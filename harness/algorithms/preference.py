"""The preference objective shared by offline DPO & co and OAIF.

Examples are dicts `{prompt, chosen, rejected, p?, ref_chosen?, ref_rejected?, chosen_ids?,
rejected_ids?, chosen_truncated?, rejected_truncated?}`: `p` is the probability (an annotator's
soft label) that `chosen` is better, used by `loss.kind: soft`; `ref_chosen`/`ref_rejected` are
cached reference log-probs (offline data), computed here with the reference model when absent
(online data). `*_ids` are the sampled token ids (trained on as they are, no re-encoding);
`*_truncated` marks a response sampled without EOS (no EOS is appended to it). The task's system
prompt (`system`) is part of every prompt scored, as it was when the responses were sampled.
"""
from __future__ import annotations

import math

import torch

from .. import losses
from ..evaluation.kl import KL_METRIC, exact_policy_samples, k3_per_sequence
from ..logprobs import frozen, pair_batch, pair_logprobs, pair_token_logprobs, reference_pair_logprobs


def example_batch(tokenizer, examples: list[dict], data_cfg, system: str | None = None) -> dict[str, torch.Tensor]:
    """The 2B-row pair batch (chosen rows, then rejected) of preference examples: the system prompt
    in every prompt, sampled ids where an example carries them, no EOS after a truncated response."""
    prompts = [e["prompt"] for e in examples]
    chosen = [e["chosen"] for e in examples]
    rejected = [e["rejected"] for e in examples]
    truncated = ([bool(e.get("chosen_truncated")) for e in examples], [bool(e.get("rejected_truncated")) for e in examples])
    ids = ([e.get("chosen_ids") for e in examples], [e.get("rejected_ids") for e in examples])
    return pair_batch(tokenizer, prompts, chosen, rejected, data_cfg, system=system, truncated=truncated, ids=ids)


def attach_reference(examples: list[dict], ref, tokenizer, data_cfg, batch_size: int = 8,
                     system: str | None = None) -> list[dict]:
    """Compute reference log-probs for `examples` (in place, in fixed chunks) and return them."""
    for i in range(0, len(examples), batch_size):
        chunk = examples[i:i + batch_size]
        c, r = reference_pair_logprobs(ref, tokenizer, None, None, None, data_cfg,
                                       batch=example_batch(tokenizer, chunk, data_cfg, system))
        for e, vc, vr in zip(chunk, c.tolist(), r.tolist()):
            e["ref_chosen"], e["ref_rejected"] = vc, vr
    return examples


class PreferenceObjective:
    """`objective(model, examples, ctx) -> (mean loss, metrics)` for the trainer core.

    Loss kind and knobs come from `cfg.loss` (dpo | ipo | slic | cdpo | rdpo | soft), lengths and
    padding from `cfg.data`; `cfg` defaults to the run's config (`ctx.cfg`). `system`: the task's
    system prompt, which the sampler (OAIF) or the data's author put before every prompt."""

    def __init__(self, cfg=None, system: str | None = None):
        self.cfg, self.system = cfg, system

    def __call__(self, model, examples: list[dict], ctx) -> tuple[torch.Tensor, dict]:
        cfg = self.cfg or ctx.cfg
        lc = cfg.loss
        prompts = [e["prompt"] for e in examples]
        chosen = [e["chosen"] for e in examples]
        rejected = [e["rejected"] for e in examples]
        batch = example_batch(ctx.tokenizer, examples, cfg.data, self.system)
        # OAIF's pairs are the current policy's samples: the one KL (k3 per token, summed) is measured
        # on them, from the per-token log-probs of the same two forwards the loss needs
        want_kl = cfg.algo == "oaif" and ctx.ref is not None and exact_policy_samples(cfg.sampling)
        cached = all("ref_chosen" in e and "ref_rejected" in e for e in examples)
        if want_kl and not cached:
            pc, pr, nc, nr, tok_pi, mask = pair_token_logprobs(model, batch)
        else:
            pc, pr, nc, nr = pair_logprobs(model, ctx.tokenizer, prompts, chosen, rejected, cfg.data, batch=batch)
        device, dtype = pc.device, pc.dtype
        tok_ref = None
        if cached:
            rc = torch.tensor([e["ref_chosen"] for e in examples], dtype=dtype, device=device)
            rr = torch.tensor([e["ref_rejected"] for e in examples], dtype=dtype, device=device)
        else:
            if ctx.ref is None:
                raise ValueError("preference objective: examples carry no reference log-probs and there is no reference model")
            if want_kl:
                with frozen(ctx.ref) as ref_model:
                    rc, rr, _, _, tok_ref, _ = pair_token_logprobs(ref_model, batch)
            else:
                rc, rr = reference_pair_logprobs(ctx.ref, ctx.tokenizer, prompts, chosen, rejected, cfg.data, batch=batch)
            rc, rr = rc.to(device, dtype), rr.to(device, dtype)
        p = None
        if lc.kind == "soft":
            p = torch.tensor([float(e.get("p", 1.0) if e.get("p") is not None else 1.0) for e in examples],
                             dtype=dtype, device=device)
        per_pair, rw_c, rw_r = losses.preference_loss(
            lc.kind, pc, pr, rc, rr, beta=lc.beta, p=p, label_smoothing=lc.label_smoothing, flip_rate=lc.flip_rate,
            margin=lc.margin, chosen_tokens=nc.to(dtype), rejected_tokens=nr.to(dtype))
        loss = per_pair.mean()
        if lc.sft_weight:
            loss = loss + lc.sft_weight * losses.sft_nll(pc, nc).mean()
        with torch.no_grad():
            n_tokens = float((nc + nr).sum())
            # mean log(pi/ref) per token on chosen + rejected: NOT a KL (offline these are the initial
            # policy's or the dataset's samples, and the mean can be negative)
            logratio = float(((pc - rc) + (pr - rr)).sum()) / max(n_tokens, 1.0)
            metrics = {
                "reward_margin": float((rw_c - rw_r).mean()),
                # ties count half: at step 0 the policy IS the reference, every reward is 0 and the
                # accuracy is chance (0.5), not 0
                "reward_acc": float(((rw_c > rw_r).float() + 0.5 * (rw_c == rw_r).float()).mean()),
                "reward_chosen": float(rw_c.mean()),
                "reward_rejected": float(rw_r.mean()),
                "logp_chosen": float(pc.detach().mean()),
                "logp_rejected": float(pr.detach().mean()),
                "logratio_per_token": logratio if math.isfinite(logratio) else float("nan"),
                "response_len": float((nc + nr).float().mean() / 2),
                "n_tokens": n_tokens,
                "n_pairs": float(len(examples)),
            }
            if p is not None:
                metrics["label_p"] = float(p.mean())
            if tok_ref is not None:  # on the kept (decisive) pairs' responses
                metrics[KL_METRIC] = float(k3_per_sequence(tok_pi.detach(), tok_ref.to(device), mask).mean())
        return loss, metrics
