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


# The registry: loss.kind -> the loss, called with the four log-prob tensors and every knob (each
# takes the ones it uses). The config's allowed loss.kind values are its keys: adding a loss is a
# function above, one line here and its test.
LOSSES = {
    "dpo": lambda *lp, beta, **_: dpo_loss(*lp, beta=beta),
    "ipo": lambda *lp, beta, chosen_tokens, rejected_tokens, **_: ipo_loss(
        *lp, beta=beta, chosen_tokens=chosen_tokens, rejected_tokens=rejected_tokens),
    "slic": lambda *lp, beta, margin, **_: slic_loss(*lp, beta=beta, margin=margin),
    "cdpo": lambda *lp, beta, label_smoothing, **_: cdpo_loss(*lp, beta=beta, label_smoothing=label_smoothing),
    "rdpo": lambda *lp, beta, flip_rate, **_: rdpo_loss(*lp, beta=beta, flip_rate=flip_rate),
    "soft": lambda *lp, beta, p, **_: soft_dpo_loss(*lp, p=1.0 if p is None else p, beta=beta),
}
PREFERENCE_LOSSES = tuple(LOSSES)


def preference_loss(kind: str, policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor,
                    ref_rejected: Tensor, *, beta: float, p: Tensor | None = None, label_smoothing: float = 0.0,
                    flip_rate: float = 0.0, margin: float = 1.0, chosen_tokens: Tensor | None = None,
                    rejected_tokens: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """LOSSES[kind] with the knobs each loss uses; shapes as above. `p` [B] is used by `soft` only
    (None there means p=1, i.e. DPO)."""
    if kind not in LOSSES:
        raise ValueError(f"loss.kind: {kind!r} is not a preference loss ({', '.join(LOSSES)})")
    return LOSSES[kind](policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=beta, p=p,
                        label_smoothing=label_smoothing, flip_rate=flip_rate, margin=margin,
                        chosen_tokens=chosen_tokens, rejected_tokens=rejected_tokens)


# -- RL: RLOO and PPO pieces -------------------------------------------------------------------
# Shapes: N sequences; per-token tensors are [N, T] over response tokens only, with a float mask
# [N, T] (1 = real response token). Grouped tensors are prompt-major: prompt i's k samples sit at
# rows i*k .. i*k+k-1.

def masked_sum(x: Tensor, mask: Tensor) -> Tensor:
    """Sum over the last dim counting only masked-in positions: [N, T] -> [N]."""
    return (x * mask).sum(-1)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Per-sequence mean over masked-in positions: [N, T] -> [N] (0 for an empty sequence)."""
    return (x * mask).sum(-1) / mask.sum(-1).clamp(min=1)


def masked_whiten(x: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """Normalise x to unit variance (and zero mean) over all masked-in entries; masked-out entries -> 0."""
    n = mask.sum().clamp(min=1)
    mean = (x * mask).sum() / n
    var = (((x - mean) * mask) ** 2).sum() / n
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask


def kl_penalised_rewards(scores: Tensor, logps: Tensor, ref_logps: Tensor, mask: Tensor,
                         kl_coef: float) -> tuple[Tensor, Tensor]:
    """Sequence-level KL folded into the reward (RLOO, Ahmadian et al. 2024; TRL's RLOOTrainer):
    kl_i = sum_t (logp_t - ref_t) over response tokens (the k1 estimator: unbiased, can be < 0 for
    one sample), reward_i = score_i - kl_coef * kl_i.

    scores [N], logps/ref_logps/mask [N, T]; returns (rewards [N], kl [N]).
    """
    kl = masked_sum(logps - ref_logps, mask)
    return scores - kl_coef * kl, kl


def rloo_advantages(rewards: Tensor, k: int) -> Tensor:
    """Leave-one-out baseline: A_ij = r_ij - mean_{l != j} r_il over the k samples of prompt i.

    rewards [N*k] prompt-major; returns advantages [N*k]. k must be >= 2.
    """
    if k < 2:
        raise ValueError(f"rl.k: RLOO needs at least 2 samples per prompt, got {k}")
    if rewards.numel() % k:
        raise ValueError(f"rloo_advantages: {rewards.numel()} rewards do not split into groups of k={k}")
    g = rewards.view(-1, k)
    baseline = (g.sum(1, keepdim=True) - g) / (k - 1)
    return (g - baseline).reshape(-1)


def rloo_loss(logps: Tensor, old_logps: Tensor, advantages: Tensor,
              clip_range: float = 0.2) -> tuple[Tensor, Tensor]:
    """Sequence-level REINFORCE with the leave-one-out advantage, in the clipped-ratio form TRL's
    RLOOTrainer uses: -min(rho * A, clip(rho, 1-eps, 1+eps) * A), rho = exp(logp - old_logp) with
    logp the summed response log-prob. On-policy (one update per batch) rho = 1 and the gradient is
    -A * grad logp.

    logps/old_logps/advantages [N]; returns (losses [N], clipped [N] float 0/1).
    """
    ratio = torch.exp(logps - old_logps)
    clipped_ratio = torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
    losses = -torch.min(ratio * advantages, clipped_ratio * advantages)
    clipped = (((ratio < 1 - clip_range) & (advantages < 0)) | ((ratio > 1 + clip_range) & (advantages > 0)))
    return losses, clipped.to(logps.dtype).detach()


def ppo_token_rewards(scores: Tensor, logps: Tensor, ref_logps: Tensor, mask: Tensor,
                      kl_coef: float) -> tuple[Tensor, Tensor]:
    """Per-token KL in the reward (PPO, Ziegler et al. 2019 / Stiennon et al. 2020):
    r_t = -kl_coef * (logp_t - ref_t) on every response token, plus the sequence score on the last one.

    scores [N], logps/ref_logps/mask [N, T]; returns (rewards [N, T], kl [N] summed).
    """
    per_token_kl = (logps - ref_logps) * mask
    rewards = -kl_coef * per_token_kl
    positions = torch.arange(mask.shape[-1], device=mask.device)
    last = (positions * (mask > 0)).argmax(-1)  # the last real token, wherever the padding sits
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    has_tokens = mask.sum(-1) > 0
    rewards = rewards.clone()
    rewards[rows, last] += torch.where(has_tokens, scores, torch.zeros_like(scores))
    return rewards, per_token_kl.sum(-1)


def gae_advantages(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float = 1.0,
                   lam: float = 0.95) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016) over right-padded response tokens:
    delta_t = r_t + gamma * V_{t+1} - V_t (V = 0 after the last token), A_t = sum_l (gamma*lam)^l delta_{t+l}.

    rewards/values/mask [N, T]; returns (advantages [N, T], returns [N, T] = A + V), both 0 where masked.
    """
    values = values * mask
    rewards = rewards * mask
    T = rewards.shape[-1]
    adv = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(T)):
        next_value = values[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = delta + gamma * lam * last
        last = last * mask[:, t]
        adv[:, t] = last
    return adv, (adv + values) * mask


def ppo_policy_loss(logps: Tensor, old_logps: Tensor, advantages: Tensor, mask: Tensor,
                    clip_range: float = 0.2) -> tuple[Tensor, Tensor]:
    """PPO clipped surrogate (Schulman et al. 2017) per token, averaged over each sequence's tokens:
    max(-A * rho, -A * clip(rho, 1-eps, 1+eps)), rho = exp(logp_t - old_logp_t).

    All [N, T]; returns (losses [N], clip_frac [N]: share of each sequence's tokens where clipping bit).
    Averaging per sequence (not per batch token) keeps micro-batching exact.
    """
    ratio = torch.exp(logps - old_logps)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
    losses = masked_mean(torch.max(unclipped, clipped), mask)
    frac = masked_mean((clipped > unclipped).to(logps.dtype), mask)
    return losses, frac.detach()


def ppo_value_loss(values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor,
                   clip_range: float = 0.2) -> tuple[Tensor, Tensor]:
    """Clipped value loss: 0.5 * max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2), per-sequence mean.

    All [N, T]; returns (losses [N], value clip_frac [N])."""
    v_clipped = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    a = (values - returns) ** 2
    b = (v_clipped - returns) ** 2
    losses = 0.5 * masked_mean(torch.max(a, b), mask)
    return losses, masked_mean((b > a).to(values.dtype), mask).detach()


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy of the next-token distribution at each position: [..., V] -> [...]."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)
