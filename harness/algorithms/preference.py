"""The preference objective shared by offline DPO & co and OAIF.

Examples are dicts `{prompt, chosen, rejected, p?, ref_chosen?, ref_rejected?}`: `p` is the
probability (an annotator's soft label) that `chosen` is better, used by `loss.kind: soft`;
`ref_chosen`/`ref_rejected` are cached reference log-probs (offline data), computed here with
the reference model when absent (online data).
"""
from __future__ import annotations

import math

import torch

from .. import losses
from ..logprobs import pair_batch, pair_logprobs, reference_pair_logprobs


def attach_reference(examples: list[dict], ref, tokenizer, data_cfg, batch_size: int = 8) -> list[dict]:
    """Compute reference log-probs for `examples` (in place, in fixed chunks) and return them."""
    for i in range(0, len(examples), batch_size):
        chunk = examples[i:i + batch_size]
        c, r = reference_pair_logprobs(ref, tokenizer, [e["prompt"] for e in chunk], [e["chosen"] for e in chunk],
                                       [e["rejected"] for e in chunk], data_cfg)
        for e, vc, vr in zip(chunk, c.tolist(), r.tolist()):
            e["ref_chosen"], e["ref_rejected"] = vc, vr
    return examples


class PreferenceObjective:
    """`objective(model, examples, ctx) -> (mean loss, metrics)` for the trainer core.

    Loss kind and knobs come from `cfg.loss` (dpo | ipo | slic | cdpo | rdpo | soft), lengths and
    padding from `cfg.data`; `cfg` defaults to the run's config (`ctx.cfg`)."""

    def __init__(self, cfg=None):
        self.cfg = cfg

    def __call__(self, model, examples: list[dict], ctx) -> tuple[torch.Tensor, dict]:
        cfg = self.cfg or ctx.cfg
        lc = cfg.loss
        prompts = [e["prompt"] for e in examples]
        chosen = [e["chosen"] for e in examples]
        rejected = [e["rejected"] for e in examples]
        batch = pair_batch(ctx.tokenizer, prompts, chosen, rejected, cfg.data)
        pc, pr, nc, nr = pair_logprobs(model, ctx.tokenizer, prompts, chosen, rejected, cfg.data, batch=batch)
        device, dtype = pc.device, pc.dtype
        if all("ref_chosen" in e and "ref_rejected" in e for e in examples):
            rc = torch.tensor([e["ref_chosen"] for e in examples], dtype=dtype, device=device)
            rr = torch.tensor([e["ref_rejected"] for e in examples], dtype=dtype, device=device)
        else:
            if ctx.ref is None:
                raise ValueError("preference objective: examples carry no reference log-probs and there is no reference model")
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
            kl = float(((pc - rc) + (pr - rr)).sum()) / max(n_tokens, 1.0)
            metrics = {
                "reward_margin": float((rw_c - rw_r).mean()),
                # ties count half: at step 0 the policy IS the reference, every reward is 0 and the
                # accuracy is chance (0.5), not 0
                "reward_acc": float(((rw_c > rw_r).float() + 0.5 * (rw_c == rw_r).float()).mean()),
                "reward_chosen": float(rw_c.mean()),
                "reward_rejected": float(rw_r.mean()),
                "logp_chosen": float(pc.detach().mean()),
                "logp_rejected": float(pr.detach().mean()),
                "kl": kl if math.isfinite(kl) else float("nan"),
                "response_len": float((nc + nr).float().mean() / 2),
                "n_tokens": n_tokens,
                "n_pairs": float(len(examples)),
            }
            if p is not None:
                metrics["label_p"] = float(p.mean())
        return loss, metrics
