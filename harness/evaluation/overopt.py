"""Reward over-optimisation arithmetic (Gao, Schulman, Hilton 2022, arXiv:2210.10760): best-of-n
KL and selection, and the proxy/gold curve with its CIs. Pure numpy/scipy; the pipeline that makes
the samples is harness/pipelines/overopt.py.

Best-of-n (Gao et al. §2.2 and their appendix): from ONE set of N samples per prompt, the expected
proxy and gold score of argmax_proxy over a uniformly random n-subset, for every n <= N, computed
exactly over all C(N, n) subsets by order statistics: with the samples ranked by proxy (ascending,
rank i = 1..N), sample i is the argmax of a random n-subset with probability C(i-1, n-1) / C(N, n).
Ties in the proxy go to the lower index (what np.argmax picks). Its KL from the sampling policy is
the analytic KL_bon = log n - (n-1)/n (Gao et al. eq. 1; exact for a continuous reward, an upper
bound for a discrete one, Beirami et al. 2024).

CIs: with two or more seeds, a Student-t 95% interval over the per-seed means (the seed, which
changes the reward model's labels, the RL run and every sample, is the unit of replication); with
one seed, a percentile bootstrap over prompts.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .bootstrap import bootstrap_mean_ci
from .replication import t_interval

SEEDS_METHOD = "mean over seeds, Student-t 95% CI (df = seeds - 1)"
PROMPTS_METHOD = "one seed: mean over prompts, 95% percentile bootstrap over prompts"


def bon_kl(n: int) -> float:
    """KL(best-of-n || base) in nats, Gao et al. eq. 1: log n - (n - 1) / n."""
    if n < 1:
        raise ValueError(f"best-of-n: n must be >= 1, got {n}")
    return math.log(n) - (n - 1) / n


def bon_weights(proxy: Sequence[float], n: int) -> np.ndarray:
    """P(sample j is the proxy-argmax of a uniformly random n-subset of the N samples), per j."""
    r = np.asarray(proxy, dtype=float)
    big_n = r.size
    if not 1 <= n <= big_n:
        raise ValueError(f"best-of-n: n={n} needs 1 <= n <= {big_n} samples")
    if not np.all(np.isfinite(r)):
        raise ValueError("best-of-n: proxy rewards must be finite")
    # ascending by proxy; among equal proxies the higher index ranks lower, so the lowest index wins
    order = np.lexsort((-np.arange(big_n), r))
    ranks = np.arange(1, big_n + 1)
    w_rank = np.array([math.comb(i - 1, n - 1) for i in ranks], dtype=float) / math.comb(big_n, n)
    w = np.empty(big_n)
    w[order] = w_rank
    return w


def bon_expected(proxy: Sequence[float], gold: Sequence[float], ns: Sequence[int],
                 extra: dict[str, Sequence[float]] | None = None) -> list[dict]:
    """For one prompt's N samples: per n, the expected proxy and gold (and each `extra` per-sample
    value, e.g. length) of the best-of-n pick."""
    p, g = np.asarray(proxy, dtype=float), np.asarray(gold, dtype=float)
    cols = {k: np.asarray(v, dtype=float) for k, v in (extra or {}).items()}
    for name, v in [("gold", g), *cols.items()]:
        if v.shape != p.shape:
            raise ValueError(f"best-of-n: {p.size} proxy scores but {v.size} {name} values")
    out = []
    for n in ns:
        w = bon_weights(p, n)
        out.append({"n": int(n), "kl": bon_kl(n), "proxy": float(w @ p), "gold": float(w @ g),
                    **{k: float(w @ v) for k, v in cols.items()}})
    return out


def bon_brute_force(proxy: Sequence[float], gold: Sequence[float], n: int) -> tuple[float, float]:
    """The same expectation by enumerating every n-subset (tests; C(N, n) must be small)."""
    from itertools import combinations

    p, g = np.asarray(proxy, dtype=float), np.asarray(gold, dtype=float)
    picks = [s[int(np.argmax(p[list(s)]))] for s in combinations(range(p.size), n)]
    return float(p[picks].mean()), float(g[picks].mean())


def interval(per_seed: Sequence[float], per_prompt: Sequence[float] | None = None, seed: int = 0) -> dict:
    """{mean, ci_low, ci_high, n, method}: t over seeds when there are two or more, else a bootstrap
    over the one seed's prompts (`per_prompt`), else no CI."""
    vals = [float(v) for v in per_seed if v is not None and math.isfinite(float(v))]
    if len(vals) >= 2:
        t = t_interval(vals)
        return {"mean": t["mean"], "ci_low": t["ci_low"], "ci_high": t["ci_high"], "n": t["n"],
                "method": SEEDS_METHOD}
    if len(vals) == 1 and per_prompt is not None and len(per_prompt) >= 2:
        lo, hi = bootstrap_mean_ci(np.asarray(per_prompt, dtype=float), seed=seed)
        return {"mean": vals[0], "ci_low": lo, "ci_high": hi, "n": 1, "method": PROMPTS_METHOD}
    return {"mean": vals[0] if vals else None, "ci_low": None, "ci_high": None, "n": len(vals), "method": "none"}


def curve(points: Sequence[dict]) -> list[dict]:
    """Per-seed points {method, x (n or step), seed, kl, proxy, gold, proxy_prompts, gold_prompts,
    kl_ci?} -> one row per (method, x): kl, proxy, gold as means with CIs (`interval`), sorted."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for p in points:
        groups.setdefault((p["method"], int(p["x"])), []).append(p)
    rows = []
    for (method, x), ps in sorted(groups.items()):
        one = ps[0] if len(ps) == 1 else None
        row = {"method": method, "x": x, "seeds": sorted(p["seed"] for p in ps)}
        for key in ("proxy", "gold"):
            fig = interval([p[key] for p in ps], one.get(f"{key}_prompts") if one else None)
            row.update({key: fig["mean"], f"{key}_ci_low": fig["ci_low"], f"{key}_ci_high": fig["ci_high"]})
            row["ci_method"] = fig["method"]
        kls = [p["kl"] for p in ps]
        if method == "bon" or all(k == kls[0] for k in kls):  # analytic (best-of-n): no spread
            row.update(kl=float(kls[0]), kl_ci_low=None, kl_ci_high=None)
        elif one is not None:  # one seed: the estimator's own bootstrap over prompts (evaluation/kl.py)
            lo, hi = (one.get("kl_ci") or (None, None))
            row.update(kl=float(one["kl"]), kl_ci_low=lo, kl_ci_high=hi)
        else:
            t = t_interval(kls)
            row.update(kl=t["mean"], kl_ci_low=t["ci_low"], kl_ci_high=t["ci_high"])
        row["sqrt_kl"] = math.sqrt(max(row["kl"], 0.0))
        rows.append(row)
    return rows


def bend(rows: Sequence[dict], points: Sequence[dict], method: str) -> dict | None:
    """Does the method's gold curve turn down? The x with the highest mean gold (the peak, chosen on
    the same data: descriptive, not a test), the last x, and gold(last) - gold(peak) with its CI
    (paired by seed: t over seeds; one seed: bootstrap over prompts of the paired difference)."""
    mine = sorted((r for r in rows if r["method"] == method), key=lambda r: r["kl"])
    if len(mine) < 2:
        return None
    peak = max(mine, key=lambda r: r["gold"])
    last, first = mine[-1], mine[0]
    by = {(p["seed"], int(p["x"])): p for p in points if p["method"] == method}
    seeds = sorted({s for s, _ in by})
    diffs = [by[(s, last["x"])]["gold"] - by[(s, peak["x"])]["gold"] for s in seeds
             if (s, last["x"]) in by and (s, peak["x"]) in by]
    per_prompt = None
    if len(seeds) == 1:
        a, b = by[(seeds[0], last["x"])].get("gold_prompts"), by[(seeds[0], peak["x"])].get("gold_prompts")
        if a is not None and b is not None and len(a) == len(b):
            per_prompt = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    fig = interval(diffs, per_prompt)
    return {"method": method, "peak_x": peak["x"], "peak_kl": peak["kl"], "peak_gold": peak["gold"],
            "first_gold": first["gold"], "last_x": last["x"], "last_kl": last["kl"], "last_gold": last["gold"],
            "proxy_first": first["proxy"], "proxy_last": last["proxy"],
            "drop": fig["mean"], "drop_ci_low": fig["ci_low"], "drop_ci_high": fig["ci_high"],
            "ci_method": fig["method"], "bends": peak["x"] != last["x"]}


def pairwise_agreement(proxy: Sequence[Sequence[float]], gold: Sequence[Sequence[float]]) -> dict:
    """How well the proxy ranks one prompt's samples as gold does: over the within-prompt pairs whose
    gold scores differ, the share the proxy orders the same way (a proxy tie counts half)."""
    agree, n = 0.0, 0
    for p, g in zip(proxy, gold):
        p, g = np.asarray(p, dtype=float), np.asarray(g, dtype=float)
        i, j = np.triu_indices(p.size, 1)
        decided = g[i] != g[j]
        s = np.sign(p[i] - p[j])[decided] * np.sign(g[i] - g[j])[decided]
        agree += float((s > 0).sum() + 0.5 * (s == 0).sum())
        n += int(decided.sum())
    return {"agreement": agree / n if n else None, "pairs": n}
