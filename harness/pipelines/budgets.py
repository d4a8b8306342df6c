"""What each arm of a demo or study was given: optimizer steps, DECIDED pairs trained on per step
(annotator verdict A or B; ties carry no preference), and annotator calls spent (pairs asked; the
offline and RLHF arms' are the calls that filled their pool). Read from the arm's own run metrics
(`source/decided` per step, logged by the step sources) and the pool's counts (pipelines/pool.py),
so the numbers are what the runs did, not what the config asked for.
"""
from __future__ import annotations

import math

from ..store import Store


def _column(df, name: str) -> list[float]:
    if df.empty or name not in df.columns:
        return []
    return [float(v) for v in df.sort_values("step")[name].tolist() if v is not None and not math.isnan(float(v))]


def arm_budget(store: Store, info: dict, pairs: dict) -> dict:
    """{steps, decided_per_step (list; None for an RL arm), decided (total), calls, pool_pairs} of a
    trained arm (`info`: pipelines/demo.py train_arm's result)."""
    df = store.metrics([info["run_id"]])
    steps = int(df["step"].nunique()) if not df.empty else 0
    pool = pairs.get(info["source"], {})
    if info["timing"] == "oaif":
        decided = _column(df, "source/decided")
        calls = sum(_column(df, "source/calls"))
        return {"steps": steps, "decided_per_step": decided, "decided": sum(decided), "calls": int(calls),
                "pool_pairs": None}
    if info["timing"] == "offline":
        decided = _column(df, "source/decided") or None  # absent: a soft source, whose pool holds ties
        return {"steps": steps, "decided_per_step": decided, "decided": sum(decided) if decided else None,
                "calls": pool.get("calls"), "pool_pairs": pool.get("pairs")}
    # rlhf: the reward model fits the pool once; RL steps use no annotator
    return {"steps": steps, "decided_per_step": None, "decided": pool.get("pairs"), "calls": pool.get("calls"),
            "pool_pairs": pool.get("pairs")}


def budget_line(name: str, b: dict) -> str:
    """One printed line per arm: steps, decided pairs per step (min-max), annotator calls."""
    per = b.get("decided_per_step")
    if per:
        lo, hi = int(min(per)), int(max(per))
        each = f"{lo} decided pairs per step" if lo == hi else f"{lo}-{hi} decided pairs per step"
        each += f" ({int(sum(per))} in all)"
    elif b.get("decided_per_step") is None and b.get("pool_pairs") is not None and b.get("decided") is None:
        each = f"{b['pool_pairs']} pool pairs (soft labels: ties included, decided not counted)"
    else:
        each = f"reward model on {b.get('decided')} decided pairs"
    unique = f", {b['pool_pairs']} distinct" if b.get("pool_pairs") is not None and per else ""
    return f"  {name}: {b['steps']} steps, {each}{unique}, {b.get('calls')} annotator calls"


def over_seeds(budgets: list[dict]) -> dict | None:
    """An arm's budgets over its seeds: the range of steps, decided pairs per step and calls (equal
    budgets give one value each; a range shows where they were not)."""
    budgets = [b for b in budgets if b]
    if not budgets:
        return None

    def span(values):
        values = [v for v in values if v is not None]
        return [min(values), max(values)] if values else None

    return {"steps": span([b["steps"] for b in budgets]),
            "decided_per_step": span([v for b in budgets for v in (b.get("decided_per_step") or [])]),
            "decided": span([b.get("decided") for b in budgets]), "calls": span([b.get("calls") for b in budgets]),
            "seeds": len(budgets)}
