"""Honest one-line readings of a win rate: n, wins/ties/losses, the CI with its method, a verdict.

A win rate printed without its sample size and interval invites reading noise as an effect (16
prompts give a 95% CI about ±0.25 wide). Every printer of a win rate goes through these functions,
so the demo, `harness eval`, `harness study` and the head-to-head table say the same thing.

The verdict compares the CI (percentile bootstrap over prompts, `winrate.win_rate`) with 0.5, the
win rate of a policy against itself: the CI excludes 0.5 -> "better than" / "worse than" the
baseline; it contains 0.5 -> "not distinguishable from". This is the bootstrap analogue of a
two-sided test at the CI's level; it says nothing about effects smaller than the CI is wide.
"""
from __future__ import annotations

import math
from typing import Mapping

CI_METHOD = "95% percentile bootstrap over prompts"


def _finite(*xs) -> bool:
    return all(isinstance(x, (int, float)) and math.isfinite(x) for x in xs)


def ci_text(low, high, digits: int = 2) -> str:
    """'[0.34, 0.72]', or 'n/a' when the interval could not be computed (no scored pairs)."""
    return f"[{low:.{digits}f}, {high:.{digits}f}]" if _finite(low, high) else "n/a"


def verdict_line(result: Mapping, baseline_name: str) -> str:
    """One line reading a win-rate result {n, ci_low, ci_high, ...} against `baseline_name`.

    e.g. 'not distinguishable from the initial policy at n=16 (CI [0.34, 0.72] contains 0.5)',
         'better than the initial policy at n=64 (CI [0.55, 0.71] excludes 0.5)'.
    n counts scored prompts (each judged in both orders); the CI is `CI_METHOD`.
    """
    n = int(result.get("n") or 0)
    lo, hi = result.get("ci_low"), result.get("ci_high")
    if n == 0:
        unparsed = int(result.get("n_unparsed") or 0)
        return f"no verdict against {baseline_name}: no scored pairs (n=0, {unparsed} unparsed)"
    if not _finite(lo, hi):
        return f"no verdict against {baseline_name} at n={n}: no confidence interval"
    ci = ci_text(lo, hi)
    if lo > 0.5:
        return f"better than {baseline_name} at n={n} (CI {ci} excludes 0.5)"
    if hi < 0.5:
        return f"worse than {baseline_name} at n={n} (CI {ci} excludes 0.5)"
    return f"not distinguishable from {baseline_name} at n={n} (CI {ci} contains 0.5)"


def lc_text(result: Mapping) -> str:
    """The length-controlled win rate with its CI, or 'not identified (reason)'.

    Reads `lc_identified` / `lc_reason` when the LC fit reports them; a missing or NaN CI is also
    'not identified' (a point estimate alone is never printed)."""
    lc, lo, hi = result.get("lc_win_rate"), result.get("lc_ci_low"), result.get("lc_ci_high")
    if result.get("lc_identified") is False:
        return f"not identified ({result.get('lc_reason') or 'no reason given'})"
    if not _finite(lc):
        return "not identified (no estimate)"
    if not _finite(lo, hi):
        return f"not identified (no CI for the estimate {lc:.2f})"
    return f"{lc:.2f} {ci_text(lo, hi)}"


def wtl(result: Mapping) -> str:
    """'wins/ties/losses' counts, e.g. '7/3/6'."""
    return f"{result.get('wins', 0)}/{result.get('ties', 0)}/{result.get('losses', 0)}"


def winrate_row(result: Mapping, baseline_name: str, **first) -> dict:
    """A table row for one win-rate result: the figure always with n, W/T/L, its CI and verdict.

    `first` holds leading columns (arm, policy, ...)."""
    row = dict(first)
    row.update({
        "n": result.get("n"), "w/t/l": wtl(result), "identical": result.get("n_identical"),
        "win_rate": result.get("win_rate"), "ci95": ci_text(result.get("ci_low"), result.get("ci_high")),
        "lc_win_rate (ci95)": lc_text(result), "verdict": verdict_line(result, baseline_name),
    })
    return row


def ci_note() -> str:
    """The footnote printed under every win-rate table."""
    return (f"win rate = mean score (win 1, tie 0.5, loss 0) over n prompts, each judged in both orders; "
            f"ci95 = {CI_METHOD}; identical = prompts whose two outputs are the same text (ties, not sent "
            f"to the judge)")
