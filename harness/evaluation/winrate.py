"""Win rate of a policy against a baseline, with a bootstrap CI, and the length-controlled win rate.

Definitions:
- score of one pair (policy's view): 1 if the judge prefers the policy, 0 if it prefers the
  baseline, 0.5 for a tie; with a soft judge, its probability that the policy is better.
  Unparsed verdicts are left out and counted (`n_unparsed`).
- win rate = mean score over the n scored pairs (ties count half). wins / ties / losses count
  scores > 0.5, == 0.5, < 0.5. CI: percentile bootstrap over pairs (see bootstrap.py).
- length-controlled win rate (alpaca_eval's GLM idea, reduced to what one policy-vs-baseline
  table supports): fit a logistic regression of the score on [1, tanh(d / sd(d))] with
  d = len(policy) - len(baseline) (characters unless the caller passes tokens), fractional targets
  allowed, a small L2 penalty (`l2`, on the mean loss) so that all-wins tables stay finite. The
  length-controlled win rate is the predicted win rate at d = 0, i.e. sigmoid(intercept). CI by
  refitting on bootstrap resamples of the pairs.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .bootstrap import DEFAULT_N_BOOT, percentile_ci, resample_indices

_SCORE = {"A": 1.0, "B": 0.0, "tie": 0.5}


def preference_scores(verdicts: Sequence[str] | None = None, p_a: Sequence[float] | None = None,
                      policy_is: str | Sequence[str] = "A") -> np.ndarray:
    """Per-pair score of the policy from canonical verdicts ('A'/'B'/'tie'/'unparsed') or p(A better).

    `policy_is` says which side the policy wrote: 'A' or 'B' for all pairs, or one per pair.
    Unparsed verdicts (or missing p) give NaN.
    """
    if (verdicts is None) == (p_a is None):
        raise ValueError("give exactly one of verdicts or p_a")
    if verdicts is not None:
        s = np.array([_SCORE.get(str(v), np.nan) for v in verdicts], dtype=float)
    else:
        s = np.array([np.nan if v is None else float(v) for v in p_a], dtype=float)
    side = np.broadcast_to(np.asarray(policy_is, dtype=object), s.shape)
    bad = {str(x) for x in set(side.tolist())} - {"A", "B"}
    if bad:
        raise ValueError(f"policy_is must be 'A' or 'B', got {sorted(bad)}")
    return np.where(side == "A", s, 1.0 - s)


def win_rate(scores: Sequence[float], n_boot: int = DEFAULT_N_BOOT, seed: int = 0, ci: float = 0.95) -> dict:
    """Win rate (ties half), counts and a percentile-bootstrap CI; NaN scores are unparsed."""
    s = np.asarray(scores, dtype=float)
    n_unparsed = int(np.isnan(s).sum())
    s = s[~np.isnan(s)]
    if ((s < 0) | (s > 1)).any():
        raise ValueError("scores must lie in [0, 1]")
    n = len(s)
    out = {"n": n, "wins": int((s > 0.5).sum()), "ties": int((s == 0.5).sum()), "losses": int((s < 0.5).sum()),
           "n_unparsed": n_unparsed, "win_rate": float(s.mean()) if n else float("nan")}
    lo = hi = float("nan")
    if n and n_boot > 0:
        lo, hi = percentile_ci(s[resample_indices(n, n_boot, seed)].mean(axis=1), ci)
    out.update(ci_low=lo, ci_high=hi)
    return out


def _fit_logistic_batch(X: np.ndarray, y: np.ndarray, l2: float, iters: int = 100) -> np.ndarray:
    """Newton's method for L2-penalised logistic regression with fractional targets, batched.

    X: (B, n, k), y: (B, n). Minimises mean_i CE(y_i, sigmoid(x_i . b)) + l2/2 |b|^2 per batch row.
    """
    B, n, k = X.shape
    b = np.zeros((B, k))
    eye = np.eye(k)
    for _ in range(iters):
        z = np.einsum("bnk,bk->bn", X, b)
        p = 1.0 / (1.0 + np.exp(-z))
        grad = np.einsum("bnk,bn->bk", X, p - y) / n + l2 * b
        w = p * (1 - p)
        H = np.einsum("bnk,bn,bnj->bkj", X, w, X) / n + l2 * eye
        step = np.linalg.solve(H, grad[..., None])[..., 0]
        b = b - step
        if np.abs(step).max() < 1e-10:
            break
    return b


def length_controlled_win_rate(scores: Sequence[float], len_policy: Sequence[float], len_baseline: Sequence[float],
                               n_boot: int = 200, seed: int = 0, ci: float = 0.95, l2: float = 1e-3) -> dict:
    """Length-controlled win rate: sigmoid(intercept) of score ~ 1 + tanh(d / sd(d)) (module docstring)."""
    s = np.asarray(scores, dtype=float)
    d = np.asarray(len_policy, dtype=float) - np.asarray(len_baseline, dtype=float)
    if not (len(s) == len(d)):
        raise ValueError(f"{len(s)} scores but {len(d)} length pairs")
    keep = ~np.isnan(s) & ~np.isnan(d)
    s, d = s[keep], d[keep]
    n = len(s)
    if n == 0:
        return {"n": 0, "lc_win_rate": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"),
                "intercept": float("nan"), "length_coef": float("nan"), "length_sd": float("nan")}
    sd = float(d.std())
    feat = np.tanh(d / sd) if sd > 0 else np.zeros_like(d)
    X = np.stack([np.ones(n), feat], axis=1)
    b = _fit_logistic_batch(X[None], s[None], l2)[0]
    lo = hi = float("nan")
    if n_boot > 0:
        idx = resample_indices(n, n_boot, seed)
        bb = _fit_logistic_batch(X[idx], s[idx], l2)
        lo, hi = percentile_ci(1 / (1 + np.exp(-bb[:, 0])), ci)
    return {"n": n, "lc_win_rate": float(1 / (1 + np.exp(-b[0]))), "ci_low": lo, "ci_high": hi,
            "intercept": float(b[0]), "length_coef": float(b[1]), "length_sd": sd}
