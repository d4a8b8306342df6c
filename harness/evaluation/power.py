"""Power of the study's cells: the minimum detectable effect (MDE) of a contrast from its own
between-seed spread, the seeds a target effect needs, and a study's size from a short pilot.

A contrast cell is the per-seed PAIRED difference a - b (evaluation/replication.py), tested with a
one-sample t test on the n per-seed differences, two-sided. Its power at a true mean difference
delta is that of the noncentral t with df = n - 1 and noncentrality d * sqrt(n), d = delta / sd:
    power(d) = P(T' > t_crit) + P(T' < -t_crit),  t_crit = t_{1 - alpha/2, n - 1}
(statsmodels' TTestPower computes the same). The standardised MDE d* solves power(d*) = 0.8; the
MDE in the metric's unit is d* x sd, sd the sample sd of the per-seed differences. Two independent
arms of n seeds each (no pairing) use df = 2n - 2 and noncentrality d * sqrt(n / 2) (TTestIndPower).

The sd of a 3-seed study is itself rough (its 95% interval spans about 0.5x to 6x the true sd), so
an MDE says what this study could have seen, not a property of the method.
"""
from __future__ import annotations

import math
from typing import Iterable

from scipy import optimize, stats

ALPHA, POWER = 0.05, 0.8
# the effect a study is built to see, per metric, in the metric's unit (docs/study.md): a tenth of a
# gold point on the 0-2 scale, a tenth of the prompts for a win rate; length has no target
DEFAULT_TARGETS = {"gold_diff": 0.1, "gold": 0.1, "gold_win": 0.1}
MAX_SEEDS = 10_000


def _check(alpha: float, power: float) -> None:
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha {alpha} and power {power} must lie in (0, 1)")


def power_t(d: float, n: float, alpha: float = ALPHA, two_sample: bool = False) -> float:
    """Power of the two-sided t test at standardised effect d with n seeds (per arm when two_sample)."""
    df, nc = (2 * n - 2, d * math.sqrt(n / 2)) if two_sample else (n - 1, d * math.sqrt(n))
    crit = stats.t.isf(alpha / 2, df)
    # the far tail (wrong sign) is ~0 at large noncentrality, where scipy's nct.cdf can return NaN
    low = float(stats.nct.cdf(-crit, df, abs(nc)))
    return float(stats.nct.sf(crit, df, abs(nc))) + (low if math.isfinite(low) else 0.0)


def detectable_d(n: int, alpha: float = ALPHA, power: float = POWER, two_sample: bool = False) -> float:
    """d*: the standardised effect the test detects with probability `power` at n seeds."""
    _check(alpha, power)
    if n < 2:
        raise ValueError(f"a t test needs at least 2 seeds, got {n}")
    # power rises from alpha (d = 0) to 1; bracket the root by doubling
    hi = 1.0
    while power_t(hi, n, alpha, two_sample) < power:
        hi *= 2
    return float(optimize.brentq(lambda d: power_t(d, n, alpha, two_sample) - power, 0.0, hi, xtol=1e-12))


def mde(sd: float | None, n: int, alpha: float = ALPHA, power: float = POWER, two_sample: bool = False) -> float | None:
    """The minimum detectable effect in the metric's unit: d*(n) x sd; None without an sd or 2 seeds."""
    if sd is None or n is None or n < 2 or not math.isfinite(sd):
        return None
    return detectable_d(n, alpha, power, two_sample) * sd


def seeds_needed(target: float, sd: float, alpha: float = ALPHA, power: float = POWER, two_sample: bool = False,
                 max_seeds: int = MAX_SEEDS) -> int | None:
    """The fewest seeds (per arm when two_sample) whose test detects `target` with `power`, given the
    per-seed sd; 2 at least (a t test needs a spread); None when even max_seeds would not."""
    _check(alpha, power)
    if target is None or target <= 0:
        raise ValueError(f"target effect must be > 0, got {target}")
    if sd is None or not math.isfinite(sd) or sd < 0:
        raise ValueError(f"sd must be a finite number >= 0, got {sd}")
    if sd == 0:
        return 2
    d = target / sd
    if power_t(d, max_seeds, alpha, two_sample) < power:
        return None
    lo, hi = 2, 2  # power rises with n: double, then bisect on integers
    while power_t(d, hi, alpha, two_sample) < power:
        lo, hi = hi, min(hi * 2, max_seeds)
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if power_t(d, mid, alpha, two_sample) < power else (lo, mid)
    return lo


def target_for(metric: str, targets: dict[str, float] | None = None) -> float | None:
    return (targets if targets is not None else DEFAULT_TARGETS).get(metric)


def power_label(verdict: str, mde_value: float | None, target: float | None, unit: str = "", n: int = 0) -> str:
    """What an unresolved cell says about its size: 'powered null (no effect larger than X)' when the
    MDE is within the target, 'unpowered (MDE X > target T)' otherwise; a resolved cell: ''."""
    if verdict != "not resolved":
        return ""
    u = f" {unit}" if unit else ""
    if mde_value is None:
        return f"unpowered (no MDE: {n} seed{'s' if n != 1 else ''} with a spread)"
    if target is None:
        return f"MDE {mde_value:.3g}{u} (no target effect set)"
    if mde_value <= target:
        return f"powered null (no effect larger than {mde_value:.3g}{u})"
    return f"unpowered (MDE {mde_value:.3g}{u} > target {target:.3g})"


def size_from_pilot(contrasts: Iterable[dict], arm_seconds: dict[str, dict], targets: dict[str, float] | None = None,
                    train_scale: float = 1.0, alpha: float = ALPHA, power: float = POWER) -> dict:
    """Seeds and wall time a study needs, from a pilot.

    contrasts: the pilot's contrast cells ({contrast, a, b, metric, sd, n, unit}); arm_seconds: per arm
    the pilot's mean seconds per cell, {"train": s, "eval": s}; train_scale: the full study's steps x
    prompts over the pilot's (training time is taken as proportional to it, evaluation as fixed).
    Returns {"rows": per contrast {contrast, metric, sd, target, seeds, seconds (its two arms at that
    many seeds)}, "seeds": the most any contrast needs, "seconds": every arm at that many seeds}."""
    def cell_seconds(arm: str) -> float:
        s = arm_seconds.get(arm)
        if s is None:
            raise ValueError(f"the pilot has no timed cell of arm {arm!r}")
        return s["train"] * train_scale + s["eval"]

    rows = []
    for c in contrasts:
        target = target_for(c["metric"], targets)
        row = {"contrast": c["contrast"], "metric": c["metric"], "unit": c.get("unit", ""), "sd": c.get("sd"),
               "pilot_seeds": c.get("n"), "target": target, "seeds": None, "seconds": None, "note": ""}
        if target is None:
            row["note"] = "no target effect for this metric"
        elif c.get("sd") is None:
            row["note"] = f"no sd: the pilot has {c.get('n', 0)} paired seed(s); it needs 2"
        else:
            row["seeds"] = seeds_needed(target, c["sd"], alpha, power)
            if row["seeds"] is None:
                row["note"] = f"more than {MAX_SEEDS} seeds"
            else:
                row["seconds"] = row["seeds"] * (cell_seconds(c["a"]) + cell_seconds(c["b"]))
        rows.append(row)
    sized = [r["seeds"] for r in rows if r["seeds"] is not None]
    seeds = max(sized) if sized else None
    total = seeds * sum(cell_seconds(a) for a in arm_seconds) if seeds else None
    return {"rows": rows, "seeds": seeds, "seconds": total, "alpha": alpha, "power": power,
            "train_scale": train_scale}


def pilot_arm_seconds(cells: Iterable[dict]) -> dict[str, dict]:
    """Per arm the mean of the pilot cells' training and evaluation seconds (study_cell results)."""
    acc: dict[str, list[tuple[float, float]]] = {}
    for c in cells:
        train = float(c.get("train_seconds") or 0.0)
        acc.setdefault(c["arm"], []).append((train, max(float(c.get("seconds") or 0.0) - train, 0.0)))
    return {a: {"train": sum(t for t, _ in v) / len(v), "eval": sum(e for _, e in v) / len(v)} for a, v in acc.items()}
