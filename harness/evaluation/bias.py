"""Position and length bias of a pairwise judge: the one implementation every report reads.

Three figures, each a share of 0/1 flags (NaN = the item does not count):
  p_first               per-order labels preferring the response SHOWN first / decisive (A/B)
                        per-order labels whose shown order is known. 0.5 = no position bias.
  position_consistency  items asked in both orders whose two verdicts agree / items asked in both
                        orders; `unparsed` says what an unparsed order does (below).
  p_longer              decisive verdicts picking the longer response / items whose lengths differ
                        by more than `min_diff` and whose verdict is decisive.

`unparsed` policies for consistency: "drop" (an item with an unparsed order is not counted: the
order cannot be checked), "inconsistent" (it counts as a disagreement: a judge that fails to answer
one order is not consistent), "equal" (unparsed is compared as a value, so unparsed == unparsed
agrees: LLMBar's "equal" rule).

The primitives take arrays (label frames, judgement lists alike); `judgement_bias` reads them off
`records.Judgement`s, whose `consistent` is the pipeline's own both-orders rule (the judge's tie
band applied). Callers keep their own key names; the numbers come from here.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

DECISIVE = ("A", "B")
UNPARSED = "unparsed"
UNPARSED_POLICIES = ("drop", "inconsistent", "equal")


def _missing(v: np.ndarray) -> np.ndarray:
    return np.array([x is None or (isinstance(x, float) and np.isnan(x)) for x in v], dtype=bool)


def first_shown(orders, verdicts) -> np.ndarray:
    """Per label: 1.0 if it prefers the response shown first, 0.0 the second, NaN for a tie, an
    unparsed answer or an unknown order. `orders`: "AB"/"BA" (anything else = unknown)."""
    o, v = np.asarray(orders, dtype=object), np.asarray(verdicts, dtype=object)
    flags = ((v == "A") == (o == "AB")).astype(float)
    flags[~(np.isin(v, DECISIVE) & np.isin(o, ("AB", "BA")))] = np.nan
    return flags


def first_shown_by_order(v_ab, v_ba, known=None) -> np.ndarray:
    """`first_shown` of items' AB and BA verdicts (None/NaN = not asked), AB flags then BA flags;
    `known`: per item, whether its shown order is known (imported labels may not say)."""
    ab, ba = np.asarray(v_ab, dtype=object), np.asarray(v_ba, dtype=object)
    k = np.ones(len(ab), dtype=bool) if known is None else np.asarray(known, dtype=bool)
    orders = np.concatenate([np.where(k, "AB", ""), np.where(k, "BA", "")]).astype(object)
    return first_shown(orders, np.concatenate([ab, ba]))


def consistent(v_ab, v_ba, unparsed: str = "drop") -> np.ndarray:
    """Per item: 1.0 if its AB and BA verdicts agree, 0.0 if not, NaN if it lacks an order (or, with
    `unparsed="drop"`, has an unparsed one)."""
    if unparsed not in UNPARSED_POLICIES:
        raise ValueError(f"consistency: unparsed must be one of {UNPARSED_POLICIES}, got {unparsed!r}")
    ab, ba = np.asarray(v_ab, dtype=object), np.asarray(v_ba, dtype=object)
    flags = (ab == ba).astype(float)
    bad = (ab == UNPARSED) | (ba == UNPARSED)
    if unparsed == "inconsistent":
        flags[bad] = 0.0
    elif unparsed == "drop":
        flags[bad] = np.nan
    flags[_missing(ab) | _missing(ba)] = np.nan
    return flags


def longer_side(len_a, len_b, min_diff: float = 0.0) -> np.ndarray:
    """Per item: "A" or "B", the longer response, or None where the lengths differ by no more than
    `min_diff`. With min_diff 0 a length may be a tuple, compared in order (tokens, then chars)."""
    if min_diff == 0:
        return np.array([None if a == b else "A" if a > b else "B" for a, b in zip(len_a, len_b)], dtype=object)
    la, lb = np.asarray(len_a, dtype=float), np.asarray(len_b, dtype=float)
    with np.errstate(invalid="ignore"):
        differs = np.abs(la - lb) > min_diff
    return np.where(differs, np.where(la > lb, "A", "B"), None).astype(object)


def prefers_longer(verdicts, longer) -> np.ndarray:
    """Per item: 1.0 if the decisive verdict picks the longer side, 0.0 the shorter, NaN otherwise."""
    v, side = np.asarray(verdicts, dtype=object), np.asarray(longer, dtype=object)
    flags = (v == side).astype(float)
    flags[~(np.isin(v, DECISIVE) & np.isin(side, DECISIVE))] = np.nan
    return flags


def share(flags, n_boot: int = 0, seed: int = 0, ci: float = 0.95) -> dict:
    """{value, n, ci_low, ci_high} of the non-NaN flags: their mean, how many, and a percentile
    bootstrap CI over them (None without n_boot or flags)."""
    f = np.asarray(flags, dtype=float)
    f = f[~np.isnan(f)]
    lo = hi = None
    if n_boot and f.size:
        from .bootstrap import bootstrap_mean_ci

        lo, hi = bootstrap_mean_ci(f, n_boot, seed, ci)
    return {"value": float(f.mean()) if f.size else None, "n": int(f.size), "ci_low": lo, "ci_high": hi}


def judgement_flags(judgements, lengths: Sequence | None = None, length=len, unparsed: str = "drop",
                    min_diff: float = 0.0) -> dict[str, np.ndarray]:
    """The flags of `records.Judgement`s: "first" per label, "consistent" and "longer" per judgement.
    `lengths`: per judgement (len_a, len_b), default `length` of each pair's two responses.
    Consistency is the judgement's own `consistent` (None when asked once: not counted)."""
    if unparsed not in UNPARSED_POLICIES:
        raise ValueError(f"consistency: unparsed must be one of {UNPARSED_POLICIES}, got {unparsed!r}")
    labels = [lab for j in judgements for lab in j.labels]
    first = first_shown([lab.shown_order for lab in labels], [lab.verdict for lab in labels])
    cons = []
    for j in judgements:
        has_unparsed = any(lab.verdict == UNPARSED for lab in j.labels)
        if j.consistent is None or (has_unparsed and unparsed == "drop"):
            cons.append(np.nan)
        elif has_unparsed and unparsed == "equal":
            cons.append(float(len({lab.verdict for lab in j.labels}) == 1))
        else:
            cons.append(float(bool(j.consistent)))
    if lengths is None:
        lengths = [(length(j.pair.response_a), length(j.pair.response_b)) for j in judgements]
    side = longer_side([a for a, _ in lengths], [b for _, b in lengths], min_diff)
    longer = prefers_longer([j.verdict for j in judgements], side)
    return {"first": first, "consistent": np.asarray(cons, dtype=float), "longer": longer}


def judgement_bias(judgements, lengths: Sequence | None = None, length=len, unparsed: str = "drop",
                   min_diff: float = 0.0, n_boot: int = 0, seed: int = 0, ci: float = 0.95) -> dict[str, dict]:
    """{"p_first", "position_consistency", "p_longer"}: each a `share` of `judgement_flags`."""
    f = judgement_flags(judgements, lengths, length, unparsed, min_diff)
    return {"p_first": share(f["first"], n_boot, seed, ci),
            "position_consistency": share(f["consistent"], n_boot, seed, ci),
            "p_longer": share(f["longer"], n_boot, seed, ci)}


__all__ = ["DECISIVE", "UNPARSED_POLICIES", "consistent", "first_shown", "first_shown_by_order", "judgement_bias",
           "judgement_flags", "longer_side", "prefers_longer", "share"]
