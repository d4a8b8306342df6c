"""Replication cells of `make study` (harness/pipelines/study.py): per-seed values -> mean and 95%
CI over seeds -> a verdict against a paper's claim.

The unit of replication is the SEED: a seed re-samples the offline pairs, every OAIF sample and the
prompt order, so the spread over seeds is the run-to-run variation a reader would meet. The CI is
Student's t over the seeds (df = seeds - 1; wide at 3 seeds, t = 4.30). A contrast is the per-seed
PAIRED difference a - b (both arms of one seed share its initial policy, prompt order and eval
prompts). The verdict of a claim:
  "> 0" / "< 0" (a direction): reproduced when the CI excludes 0 on the claimed side, not
      reproduced when it excludes 0 on the other side, not resolved otherwise;
  ">= -d" (no loss beyond a margin d): reproduced when the CI's low end is at or above -d, not
      reproduced when its high end is below -d, not resolved otherwise.
"""
from __future__ import annotations

import math
import re
from typing import Sequence

import numpy as np
from scipy import stats

from . import power

T_METHOD = "mean over seeds, Student-t 95% CI (df = seeds - 1)"
CLAIM_RE = re.compile(r"^\s*(>=|<=|>|<)\s*(-?[0-9]*\.?[0-9]+)\s*$")
REPRODUCED, NOT_REPRODUCED, NOT_RESOLVED = "reproduced", "not reproduced", "not resolved"


def _finite(values: Sequence[float | None]) -> np.ndarray:
    return np.asarray([float(v) for v in values if v is not None and math.isfinite(float(v))], dtype=float)


def t_interval(values: Sequence[float | None], ci: float = 0.95) -> dict:
    """{mean, ci_low, ci_high, sd, n, method} of the finite values; no CI below two values."""
    v = _finite(values)
    out = {"mean": float(v.mean()) if v.size else None, "ci_low": None, "ci_high": None,
           "sd": float(v.std(ddof=1)) if v.size >= 2 else None, "n": int(v.size), "method": T_METHOD}
    if v.size >= 2:
        half = stats.t.ppf((1 + ci) / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
        out.update(ci_low=float(v.mean() - half), ci_high=float(v.mean() + half))
    return out


def parse_claim(claim: str, where: str = "claim") -> tuple[str, float]:
    """'> 0', '< 0', '>= -0.05' -> (op, threshold); a ValueError naming `where` otherwise."""
    m = CLAIM_RE.match(claim or "")
    if not m:
        raise ValueError(f"{where}: {claim!r} is not a claim; use '> 0', '< 0' or '>= -<margin>'")
    return m.group(1), float(m.group(2))


def verdict(claim: str, ci_low: float | None, ci_high: float | None) -> str:
    """The claim's verdict from a CI (module docs); no CI: not resolved."""
    op, x = parse_claim(claim)
    if ci_low is None or ci_high is None:
        return NOT_RESOLVED
    if op in (">", ">="):
        holds, fails = (ci_low > x if op == ">" else ci_low >= x), ci_high < x
    else:
        holds, fails = (ci_high < x if op == "<" else ci_high <= x), ci_low > x
    return REPRODUCED if holds else NOT_REPRODUCED if fails else NOT_RESOLVED


def paired_differences(a: dict[int, float | None], b: dict[int, float | None]) -> dict[int, float]:
    """Per seed a - b, over the seeds both have."""
    return {s: a[s] - b[s] for s in sorted(set(a) & set(b)) if a[s] is not None and b[s] is not None}


def arm_cell(per_seed: dict[int, dict], metrics: Sequence[str]) -> dict:
    """{metric: t_interval over seeds, 'seeds': per-seed values} for one arm."""
    out = {m: t_interval([v.get(m) for v in per_seed.values()]) for m in metrics}
    out["seeds"] = {s: {m: v.get(m) for m in metrics} for s, v in per_seed.items()}
    return out


def contrast_cell(name: str, a: str, b: str, metric: str, claim: str, per_arm: dict[str, dict[int, dict]],
                  paper: str = "", unit: str = "", targets: dict[str, float] | None = None) -> dict:
    """One row of the replication table: the paired per-seed difference a - b of `metric`, its
    verdict, MDE and, when unresolved, its power label against the metric's target effect
    (`targets`, default power.DEFAULT_TARGETS)."""
    diffs = paired_differences({s: v.get(metric) for s, v in per_arm.get(a, {}).items()},
                               {s: v.get(metric) for s, v in per_arm.get(b, {}).items()})
    ci = t_interval(list(diffs.values()))
    v = verdict(claim, ci["ci_low"], ci["ci_high"])
    return {"contrast": name, "a": a, "b": b, "metric": metric, "unit": unit, "claim": f"{a} - {b} {claim}",
            "paper": paper, **{k: ci[k] for k in ("mean", "ci_low", "ci_high", "sd", "n")}, "method": ci["method"],
            "per_seed": diffs, "verdict": v, **power_fields(metric, ci["sd"], ci["n"], v, unit, targets)}


def power_fields(metric: str, sd: float | None, n: int, verdict_: str, unit: str = "",
                 targets: dict[str, float] | None = None) -> dict:
    """{mde, target, power}: the cell's MDE (power.mde), the metric's target effect, the label."""
    m, target = power.mde(sd, n), power.target_for(metric, targets)
    return {"mde": m, "target": target, "power": power.power_label(verdict_, m, target, unit, n)}


def _fmt(fig: dict, digits: int = 3, signed: bool = False) -> str:
    if fig.get("mean") is None:
        return "n/a"
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    if fig.get("ci_low") is None:
        return f"{f.format(fig['mean'])} (n={fig['n']}, no CI)"
    return f"{f.format(fig['mean'])} [{f.format(fig['ci_low'])}, {f.format(fig['ci_high'])}] (n={fig['n']})"


def markdown(summary: dict) -> str:
    """The study's replication table and its per-arm table, as markdown (README, docs/study.md)."""
    ev, b = summary["eval"], summary["budget"]
    lines = [f"**{summary.get('question') or summary['name']}**", "",
             f"Study `{summary['group']}`: {len(summary['arms'])} arms x {len(summary['seeds'])} seeds "
             f"({', '.join(map(str, summary['seeds']))}), each {b['steps']} steps x {b['prompts_per_step']} prompts "
             f"from the same initial policy; evaluation: the task's gold scorer, {ev['n']} eval prompts, "
             f"{ev['sampling']} decoding, {ev['max_new_tokens']} new tokens. Every figure: {summary['method']}; "
             "a contrast is the per-seed paired difference a - b. MDE: the smallest true a - b its seeds detect "
             "with 80% power (5% two-sided paired t, the cell's own sd); an unresolved cell is a powered null "
             "when MDE <= the target effect, unpowered otherwise.", "",
             "| comparison | paper's finding | measured: a - b | unit | claim | verdict | MDE (80% power) |",
             "|---|---|---|---|---|---|---|"]
    for c in summary["contrasts"]:
        digits = 0 if c["metric"] == "chars" else 3
        if "mde" not in c:  # a summary stored before cells carried their power
            c = {**c, **power_fields(c["metric"], c.get("sd"), c.get("n") or 0, c["verdict"], c.get("unit", ""))}
        size = "n/a" if c["mde"] is None else f"{c['mde']:.{digits}f}"
        lines.append(f"| {c['contrast']} | {c['paper']} | {_fmt(c, digits, signed=True)} | {c['unit']} | "
                     f"`{c['claim']}` | **{c['verdict']}**{' — ' + c['power'] if c['power'] else ''} | {size} |")
    lines += ["", "| arm | run | objective | gold win rate vs initial | gold score - initial | gold score | "
                  "mean length (chars) |", "|---|---|---|---|---|---|---|"]
    for a in summary["arms"]:
        lines.append(f"| {a['label']} | `{a['run']}` | {a['objective']} | {_fmt(a['gold_win'])} | "
                     f"{_fmt(a['gold_diff'], signed=True)} | {_fmt(a['gold'])} | {_fmt(a['chars'], 0)} |")
    return "\n".join(lines) + "\n"


def relabel(summary: dict, targets: dict[str, float] | None) -> dict:
    """The summary with every contrast's MDE and power label recomputed against `targets` (e.g.
    `harness replicate --target gold_diff=0.05`)."""
    summary["contrasts"] = [{**c, **power_fields(c["metric"], c.get("sd"), c.get("n") or 0, c["verdict"],
                                                 c.get("unit", ""), targets)} for c in summary["contrasts"]]
    return summary
