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



# -- length-controlled win rate (AlpacaEval 2, Dubois et al. 2024) ---------------------------------

DEFAULT_LC_MIN_N = 10  # pairs; below this a 2-3 parameter logistic fit is mostly its penalty
LC_C = 100.0  # alpaca_eval's fit_LogisticRegressionCV: L1, C=100 when it does not cross-validate C


def _sigmoid(z):
    return np.exp(-np.logaddexp(0.0, -z))


def _objective(X, y, w, b, C):
    """C * sum_i w_i CE(y_i, sigmoid(x_i b)) + |b|_1, per batch row; X (B, n, k), y/w (B, n), b (B, k)."""
    z = np.einsum("bnk,bk->bn", X, b)
    ce = np.logaddexp(0.0, z) - y * z
    return C * (w * ce).sum(axis=1) + np.abs(b).sum(axis=1)


def fit_l1_logistic(X: np.ndarray, y: np.ndarray, w: np.ndarray | None = None, C: float = LC_C,
                    iters: int = 100, tol: float = 1e-10) -> np.ndarray:
    """L1-penalised logistic regression with fractional targets and no separate intercept, batched.

    X: (B, n, k) design, y: (B, n) targets in [0, 1], w: (B, n) row weights (bootstrap counts; default 1).
    Minimises C * sum_i w_i CE(y_i, sigmoid(x_i . b)) + sum_j |b_j| -- the objective of sklearn's
    LogisticRegression(penalty='l1', C=C, fit_intercept=False) on alpaca_eval's duplicated rows (each pair
    once with label 1, weight y, once with label 0, weight 1 - y). Proximal Newton: a quadratic model of the
    log-loss, minimised with the L1 term by coordinate descent, then a backtracking line search. Returns (B, k).
    """
    X, y = np.asarray(X, float), np.asarray(y, float)
    B, n, k = X.shape
    w = np.ones((B, n)) if w is None else np.asarray(w, float)
    b = np.zeros((B, k))
    f = _objective(X, y, w, b, C)
    for _ in range(iters):
        p = _sigmoid(np.einsum("bnk,bk->bn", X, b))
        g = C * np.einsum("bnk,bn->bk", X, w * (p - y))
        H = C * np.einsum("bnk,bn,bnj->bkj", X, w * p * (1 - p), X) + 1e-12 * np.eye(k)
        new = b.copy()
        for _ in range(50):  # coordinate descent on g.(u-b) + (u-b)'H(u-b)/2 + |u|_1
            prev = new.copy()
            for j in range(k):
                a = H[:, j, j]
                c = g[:, j] + np.einsum("bk,bk->b", H[:, j, :], new - b) - a * (new[:, j] - b[:, j]) - a * b[:, j]
                new[:, j] = -np.sign(c) * np.maximum(np.abs(c) - 1.0, 0.0) / a
            if np.abs(new - prev).max() < tol:
                break
        step = new - b
        t = np.ones(B)
        for _ in range(30):  # backtracking: halve the step where the objective did not decrease
            f_new = _objective(X, y, w, b + t[:, None] * step, C)
            worse = f_new > f + 1e-12
            if not worse.any():
                break
            t = np.where(worse, t / 2, t)
        b = b + t[:, None] * step
        f = _objective(X, y, w, b, C)
        if np.abs(t[:, None] * step).max() < tol:
            break
    return b


def lc_identification(scores: np.ndarray, d: np.ndarray, min_n: int = DEFAULT_LC_MIN_N) -> str | None:
    """Why the length-controlled win rate cannot be estimated on these pairs (None when it can).

    LC is the fitted win rate at length difference 0: it needs pairs on both sides of 0 (else it is an
    extrapolation that the penalty decides), variance in d and in the scores (else the logistic optimum is
    at infinity), and at least `min_n` pairs.
    """
    n = len(scores)
    if n < min_n:
        return f"n={n} below the minimum of {min_n} pairs"
    if np.all(d == d[0]):
        return "no length variance (every length difference is the same)"
    if not ((d > 0).any() and (d < 0).any()):
        side = "longer" if (d >= 0).all() else "shorter"
        return f"length differences all one sign (policy {side} or equal on all {n} pairs)"
    if np.all(scores == scores[0]):
        return f"no variance in the scores (all {scores[0]:g})"
    return None


def _lc_design(d: np.ndarray, difficulty: np.ndarray | None) -> np.ndarray:
    """Rows [1 (model term), tanh(d / sd(d)), difficulty]; sd with ddof=1 as pandas/alpaca_eval. d: (..., n)."""
    sd = d.std(axis=-1, ddof=1, keepdims=True)
    cols = [np.ones_like(d), np.tanh(d / np.where(sd > 0, sd, 1.0))]
    if difficulty is not None:
        cols.append(np.broadcast_to(difficulty, d.shape))
    return np.stack(cols, axis=-1)


def _lc_at_zero(b: np.ndarray, difficulty: np.ndarray | None) -> np.ndarray:
    """Mean predicted win rate with the length term at 0: sigmoid(theta) or mean_x sigmoid(theta + psi g_x)."""
    if difficulty is None:
        return _sigmoid(b[..., 0])
    return _sigmoid(b[..., 0, None] + b[..., 2, None] * difficulty).mean(axis=-1)


def length_controlled_win_rate(scores: Sequence[float], len_policy: Sequence[float], len_baseline: Sequence[float],
                               n_boot: int = 200, seed: int = 0, ci: float = 0.95, C: float = LC_C,
                               difficulty: Sequence[float] | None = None,
                               min_n: int = DEFAULT_LC_MIN_N) -> dict:
    """AlpacaEval 2's length-controlled win rate of one policy against one baseline, with a bootstrap CI.

    Model (alpaca_eval `length_controlled_v1`, formula `np.tanh(std_delta_len) + instruction_difficulty +
    not_gamed_baseline - 1`): logit P(policy better on x) = theta + phi * tanh(d_x / sd(d)) [+ psi * g_x],
    d = len_policy - len_baseline (characters unless the caller passes tokens; alpaca_eval uses baseline -
    policy, which only flips phi's sign), sd with ddof=1, g_x an instruction difficulty (only when several
    policies share the instructions: see `length_controlled_win_rates`). Fitted on fractional scores with
    L1, C=100, no separate intercept (theta is the penalised model column), as alpaca_eval's fit. With one
    policy and no difficulty the fit reduces to a two-parameter logistic regression and LC = sigmoid(theta).
    alpaca_eval also adds down-weighted (0.2) annotations of its "gamed" verbose/concise baselines and picks
    C by 5-fold CV; neither exists for our prompt sets, so C is fixed.

    Returns n, identified, reason (None or why not, see `lc_identification`), lc_win_rate (NaN when not
    identified), ci_low / ci_high (percentile bootstrap over pairs, refitting with sd recomputed;
    resamples that are themselves not identified are left out and counted in n_boot_skipped),
    theta, length_coef (phi), difficulty_coef (psi or NaN), length_sd (characters).
    """
    s = np.asarray(scores, dtype=float)
    d = np.asarray(len_policy, dtype=float) - np.asarray(len_baseline, dtype=float)
    if len(s) != len(d):
        raise ValueError(f"{len(s)} scores but {len(d)} length pairs")
    g = None if difficulty is None else np.asarray(difficulty, dtype=float)
    if g is not None and len(g) != len(s):
        raise ValueError(f"{len(s)} scores but {len(g)} difficulties")
    if ((s < 0) | (s > 1)).any():
        raise ValueError("scores must lie in [0, 1]")
    keep = ~np.isnan(s) & ~np.isnan(d) & (np.ones_like(s, bool) if g is None else ~np.isnan(g))
    s, d = s[keep], d[keep]
    g = None if g is None else g[keep]
    n = len(s)
    out = {"n": n, "identified": False, "reason": None, "lc_win_rate": float("nan"), "ci_low": float("nan"),
           "ci_high": float("nan"), "n_boot": 0, "n_boot_skipped": 0, "theta": float("nan"),
           "length_coef": float("nan"), "difficulty_coef": float("nan"),
           "length_sd": float(d.std(ddof=1)) if n > 1 else float("nan")}
    out["reason"] = lc_identification(s, d, min_n) if n else "no scored pairs"
    if out["reason"] is not None:
        return out
    b = fit_l1_logistic(_lc_design(d, g)[None], s[None], C=C)[0]
    out.update(identified=True, lc_win_rate=float(_lc_at_zero(b, g)), theta=float(b[0]), length_coef=float(b[1]),
               difficulty_coef=float(b[2]) if g is not None else float("nan"))
    if n_boot > 0:
        idx = resample_indices(n, n_boot, seed)
        ok = np.array([lc_identification(s[r], d[r], min_n) is None for r in idx])
        idx = idx[ok]
        if len(idx):
            gb = None if g is None else g[idx]
            bb = fit_l1_logistic(_lc_design(d[idx], gb), s[idx], C=C)
            vals = _sigmoid(bb[:, 0]) if g is None else _sigmoid(bb[:, :1] + bb[:, 2:3] * gb).mean(axis=1)
            out["ci_low"], out["ci_high"] = percentile_ci(vals, ci)
        out.update(n_boot=int(len(idx)), n_boot_skipped=int((~ok).sum()))
    return out


def format_lc(res: dict, prefix: str = "") -> str:
    """'0.512 [0.401, 0.622]' or 'not identified (reason)' from a length_controlled_win_rate result
    (or from a dict holding it under `prefix`-ed keys: lc_win_rate, {prefix}ci_low, {prefix}identified...)."""
    get = (lambda k: res.get(prefix + k))
    ident = get("identified")
    value = res.get("lc_win_rate")
    if ident is False or value is None or value != value:
        return f"not identified ({get('reason') or 'no estimate'})"
    lo, hi = get("ci_low"), get("ci_high")
    ci = f" [{lo:.3f}, {hi:.3f}]" if lo is not None and lo == lo else ""
    return f"{value:.3f}{ci}"


def _fit_l2_logistic(X: np.ndarray, y: np.ndarray, l2: float, iters: int = 100) -> np.ndarray:
    """Newton's method for sum_i CE(y_i, sigmoid(x_i b)) + l2/2 |b|^2 (one design X (n, k)); returns (k,)."""
    b = np.zeros(X.shape[1])
    for _ in range(iters):
        p = _sigmoid(X @ b)
        step = np.linalg.solve((X * (p * (1 - p))[:, None]).T @ X + l2 * np.eye(len(b)), X.T @ (p - y) + l2 * b)
        b -= step
        if np.abs(step).max() < 1e-10:
            break
    return b


def instruction_difficulty(frame, l2: float = 1e-2) -> "pd.Series":
    """g_x per instruction from one joint fit over every policy that shares the instructions:
    logit P(policy m better on x) = theta_m + phi_m tanh(d_mx / sd_m) + g_x, g centred (mean 0). The ridge
    `l2` only pins the offset shared by theta and g (and keeps instructions every policy won finite)."""
    import pandas as pd

    f = frame.reset_index(drop=True)
    models, instr = sorted(f["model"].unique()), sorted(f["instruction"].unique())
    mi = f["model"].map({m: i for i, m in enumerate(models)}).to_numpy()
    xi = f["instruction"].map({x: i for i, x in enumerate(instr)}).to_numpy()
    d = (f["len_model"] - f["len_baseline"]).to_numpy(float)
    sd = pd.Series(d).groupby(mi).std(ddof=1).reindex(range(len(models))).fillna(0).to_numpy()
    M, K = len(models), len(instr)
    X = np.zeros((len(f), 2 * M + K))
    X[np.arange(len(f)), mi] = 1.0
    X[np.arange(len(f)), M + mi] = np.tanh(d / np.where(sd[mi] > 0, sd[mi], 1.0))
    X[np.arange(len(f)), 2 * M + xi] = 1.0
    b = _fit_l2_logistic(X, f["score"].to_numpy(float), l2)
    g = b[2 * M:]
    return pd.Series(g - g.mean(), index=instr, name="instruction_difficulty")


def length_controlled_win_rates(frame, n_boot: int = 200, seed: int = 0, ci: float = 0.95, C: float = LC_C,
                                min_n: int = DEFAULT_LC_MIN_N) -> "pd.DataFrame":
    """LC win rate of several policies against one baseline on shared instructions (AlpacaEval 2 with its
    instruction-difficulty term). `frame`: one row per (model, instruction) with columns model, instruction,
    score (policy's view, [0, 1]), len_model, len_baseline. With one policy, or no instruction judged for two
    policies, there is no difficulty term (it would be one free parameter per pair). CI: percentile bootstrap
    over instructions, refitting the difficulties and every policy's GLM.
    Columns: model, n, identified, reason, lc_win_rate, ci_low, ci_high, n_boot, n_boot_skipped, theta,
    length_coef, difficulty_coef, uses_difficulty.
    """
    import pandas as pd

    missing = {"model", "instruction", "score", "len_model", "len_baseline"} - set(frame.columns)
    if missing:
        raise ValueError(f"length_controlled_win_rates needs columns {sorted(missing)}")
    f = frame[frame["score"].notna()].reset_index(drop=True)
    shared = f.groupby("instruction")["model"].nunique()
    use_g = f["model"].nunique() >= 2 and (shared >= 2).sum() >= 2
    g = instruction_difficulty(f) if use_g else None

    def one(df, g_):
        return length_controlled_win_rate(df["score"], df["len_model"], df["len_baseline"], n_boot=0, C=C,
                                          difficulty=None if g_ is None else df["instruction"].map(g_), min_n=min_n)

    rows = {m: {"model": m, **one(d, g), "uses_difficulty": bool(use_g)} for m, d in f.groupby("model", sort=True)}
    if n_boot > 0:
        instr = np.array(sorted(f["instruction"].unique()))
        by_x = {x: d for x, d in f.groupby("instruction")}
        boot = {m: [] for m in rows}
        skipped = {m: 0 for m in rows}
        for r in resample_indices(len(instr), n_boot, seed):
            # duplicated instructions get new names so the difficulty fit sees them as separate instructions
            fb = pd.concat([by_x[instr[j]].assign(instruction=f"{instr[j]}#{t}") for t, j in enumerate(r)])
            gb = instruction_difficulty(fb) if use_g else None
            for m, d in fb.groupby("model"):
                res = one(d, gb)
                if res["identified"]:
                    boot[m].append(res["lc_win_rate"])
                else:
                    skipped[m] += 1
        for m, row in rows.items():
            if row["identified"]:
                row["ci_low"], row["ci_high"] = percentile_ci(np.array(boot[m]), ci)
            row.update(n_boot=len(boot[m]), n_boot_skipped=n_boot - len(boot[m]))
    cols = ["model", "n", "identified", "reason", "lc_win_rate", "ci_low", "ci_high", "n_boot", "n_boot_skipped",
            "theta", "length_coef", "difficulty_coef", "uses_difficulty"]
    return pd.DataFrame(list(rows.values()))[cols] if rows else pd.DataFrame(columns=cols)
