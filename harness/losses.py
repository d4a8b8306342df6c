"""Loss functions as pure torch functions: no models, no configs, no state.

Preference losses take the summed response log-probs of the policy and of the reference for the
chosen and the rejected response, each a float tensor of shape [B], and return
`(losses [B], chosen_rewards [B], rejected_rewards [B])`: per-pair losses (the caller takes the
mean) and the implicit rewards `beta * (policy - reference)`, detached, for metrics.

Notation: h = (pi_c - ref_c) - (pi_r - ref_r), the difference of log-ratios; logsig = log sigmoid.

This is a flat file of functions on purpose: RL losses (RLOO, PPO pieces) are added below.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def _logratios(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor):
    chosen = policy_chosen - ref_chosen
    rejected = policy_rejected - ref_rejected
    return chosen, rejected


def _rewards(beta: float, chosen: Tensor, rejected: Tensor) -> tuple[Tensor, Tensor]:
    return beta * chosen.detach(), beta * rejected.detach()


def dpo_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor,
             beta: float = 0.1) -> tuple[Tensor, Tensor, Tensor]:
    """DPO (Rafailov et al. 2023), sigmoid form: -logsig(beta * h).

    Inputs [B] summed response log-probs; returns (losses [B], chosen_rewards [B], rejected_rewards [B]).
    """
    c, r = _logratios(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    return -F.logsigmoid(beta * (c - r)), *_rewards(beta, c, r)


def ipo_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor,
             beta: float = 0.1, chosen_tokens: Tensor | None = None,
             rejected_tokens: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """IPO (Azar et al. 2023, eq. 17): (h - 1/(2*beta))^2, beta playing the paper's tau.

    With `chosen_tokens`/`rejected_tokens` [B] (response lengths) each log-ratio is averaged per token
    first, as the IPO authors and TRL do, so the loss does not grow with response length.
    Inputs [B]; returns (losses [B], chosen_rewards [B], rejected_rewards [B]).
    """
    c, r = _logratios(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    cn = c / chosen_tokens.clamp(min=1) if chosen_tokens is not None else c
    rn = r / rejected_tokens.clamp(min=1) if rejected_tokens is not None else r
    return (cn - rn - 1.0 / (2.0 * beta)) ** 2, *_rewards(beta, c, r)


def slic_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor,
              beta: float = 0.1, margin: float = 1.0) -> tuple[Tensor, Tensor, Tensor]:
    """SLiC-HF calibration loss (Zhao et al. 2023) on log-ratios, hinge form: relu(margin - beta * h).

    margin=1 is TRL's `hinge`. Inputs [B]; returns (losses [B], chosen_rewards [B], rejected_rewards [B]).
    """
    c, r = _logratios(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    return torch.relu(margin - beta * (c - r)), *_rewards(beta, c, r)


def cdpo_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor,
              beta: float = 0.1, label_smoothing: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
    """Conservative DPO (Mitchell 2023): labels assumed flipped with probability eps = label_smoothing,
    -(1-eps) * logsig(beta*h) - eps * logsig(-beta*h). eps=0 is DPO.

    Inputs [B]; returns (losses [B], chosen_rewards [B], rejected_rewards [B]).
    """
    c, r = _logratios(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    z = beta * (c - r)
    eps = label_smoothing
    return -(1 - eps) * F.logsigmoid(z) - eps * F.logsigmoid(-z), *_rewards(beta, c, r)


def rdpo_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor,
              beta: float = 0.1, flip_rate: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
    """Robust DPO (Chowdhury et al. 2024, eq. 7): with l(z) = -logsig(z) and a known flip rate eps < 1/2,
    [(1-eps) * l(beta*h) - eps * l(-beta*h)] / (1 - 2*eps): an unbiased estimate of the clean DPO loss
    under random label flips. eps=0 is DPO. Same as TRL's `robust`.

    Inputs [B]; returns (losses [B], chosen_rewards [B], rejected_rewards [B]).
    """
    if not 0.0 <= flip_rate < 0.5:
        raise ValueError(f"rdpo: flip_rate must be in [0, 0.5), got {flip_rate}")
    c, r = _logratios(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    z = beta * (c - r)
    eps = flip_rate
    losses = ((1 - eps) * -F.logsigmoid(z) - eps * -F.logsigmoid(-z)) / (1 - 2 * eps)
    return losses, *_rewards(beta, c, r)


def soft_dpo_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor,
                  p: Tensor | float, beta: float = 0.1) -> tuple[Tensor, Tensor, Tensor]:
    """Soft-label DPO: binary cross-entropy of sigmoid(beta*h) against an annotator's probability
    p [B] (or a scalar) that `chosen` is better: -p * logsig(beta*h) - (1-p) * logsig(-beta*h).
    p=1 is DPO; p=1-eps for every pair is cDPO. At p=0.5 the minimum is h=0.

    Inputs [B]; returns (losses [B], chosen_rewards [B], rejected_rewards [B]).
    """
    c, r = _logratios(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    z = beta * (c - r)
    p = torch.as_tensor(p, dtype=z.dtype, device=z.device)
    return -p * F.logsigmoid(z) - (1 - p) * F.logsigmoid(-z), *_rewards(beta, c, r)


def bt_loss(chosen_scores: Tensor, rejected_scores: Tensor, margin: Tensor | float = 0.0,
            p: Tensor | float | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Bradley-Terry reward-model loss: -logsig(s_c - s_r - margin), or with a soft label p [B]
    BCE against p. Scores [B] are the reward model's scalar outputs.

    Returns (losses [B], chosen_scores [B], rejected_scores [B]) (scores detached, for metrics).
    """
    z = chosen_scores - rejected_scores - margin
    if p is None:
        losses = -F.logsigmoid(z)
    else:
        p = torch.as_tensor(p, dtype=z.dtype, device=z.device)
        losses = -p * F.logsigmoid(z) - (1 - p) * F.logsigmoid(-z)
    return losses, chosen_scores.detach(), rejected_scores.detach()


def sft_nll(logps: Tensor, n_tokens: Tensor) -> Tensor:
    """Negative log-likelihood per response token of each sequence: -logps / n_tokens.

    logps [B] summed response log-probs, n_tokens [B] response lengths; returns losses [B]. Averaging
    per sequence (not per batch token) keeps micro-batching exact: 1x8 and 8x1 give the same mean.
    """
    return -logps / n_tokens.to(logps.dtype).clamp(min=1)


PREFERENCE_LOSSES = ("dpo", "ipo", "slic", "cdpo", "rdpo", "soft")


def preference_loss(kind: str, policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor,
                    ref_rejected: Tensor, *, beta: float, p: Tensor | None = None, label_smoothing: float = 0.0,
                    flip_rate: float = 0.0, margin: float = 1.0, chosen_tokens: Tensor | None = None,
                    rejected_tokens: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Dispatch on `kind` (one of PREFERENCE_LOSSES) with the knobs each loss uses; shapes as above.
    `p` [B] is used by `soft` only (None there means p=1, i.e. DPO)."""
    args = (policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    if kind == "dpo":
        return dpo_loss(*args, beta=beta)
    if kind == "ipo":
        return ipo_loss(*args, beta=beta, chosen_tokens=chosen_tokens, rejected_tokens=rejected_tokens)
    if kind == "slic":
        return slic_loss(*args, beta=beta, margin=margin)
    if kind == "cdpo":
        return cdpo_loss(*args, beta=beta, label_smoothing=label_smoothing)
    if kind == "rdpo":
        return rdpo_loss(*args, beta=beta, flip_rate=flip_rate)
    if kind == "soft":
        return soft_dpo_loss(*args, p=1.0 if p is None else p, beta=beta)
    raise ValueError(f"loss.kind: {kind!r} is not a preference loss ({', '.join(PREFERENCE_LOSSES)})")
