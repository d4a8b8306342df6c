"""Intransitive (cyclic) triads, and how well one Bradley-Terry fit explains an annotator's votes.

The labels are keyed by comparison (comparisons.canonical: one prompt, two policies, whichever order a
record lists them in); per annotator, its labels of a comparison are combined into one verdict
(items.per_item_verdicts: both orders, mean score, a flip across orders is a tie).

  triad          three policies X, Y, Z answering one prompt (the same prompt_key, dataset and
                 subset) whose three comparisons XY, YZ, XZ the annotator all judged (n_triads)
  decided        all three verdicts pick a side (n_decided); a triad with a tie is counted in n_tied
  cyclic         a decided triad in which every policy wins exactly once (X > Y > Z > X): no order of
                 the three agrees with all three verdicts (n_cyclic)
  cyclic_rate    n_cyclic / n_decided; 95% percentile bootstrap over prompts (the triads of one
                 prompt share comparisons, so prompts are resampled). Three independent coin flips
                 give 0.25 (2 of the 8 outcomes are cycles); a transitive annotator gives 0.
  bt_agreement   Bradley-Terry (bradley_terry.bradley_terry, no bootstrap) fitted to all the annotator's
                 combined verdicts in the dataset/subset (ties half a win each): the share of its
                 decided verdicts where the policy the fit rates higher won (n_bt_votes; a fit tie
                 between two ratings counts half). The fit is held fixed: the CI is a percentile
                 bootstrap over prompts of that share, not of a refit.
A cycle within a prompt is a preference no single ranking of the policies can give; bt_agreement
measures the same thing across prompts: the share of votes one ranking (BT) explains.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from .bootstrap import DEFAULT_N_BOOT, bootstrap_ratio_ci
from .bradley_terry import bradley_terry
from .comparisons import canonical
from .items import _prepare, per_item_verdicts, with_all

TRIAD_COLUMNS = ["dataset", "subset", "annotator", "kind", "n_prompts", "n_triads", "n_tied", "n_decided", "n_cyclic",
                 "cyclic_rate", "cyclic_ci_low", "cyclic_ci_high", "n_policies", "n_bt_votes", "bt_agreement",
                 "bt_ci_low", "bt_ci_high"]


def is_cyclic(w_xy: str, w_yz: str, w_xz: str) -> bool:
    """Verdicts of a decided triad ('A' = the first-named policy of each pair wins): a cycle iff each
    policy wins once."""
    wins = {"X": 0, "Y": 0, "Z": 0}
    for (a, b), w in ((("X", "Y"), w_xy), (("Y", "Z"), w_yz), (("X", "Z"), w_xz)):
        wins[a if w == "A" else b] += 1
    return sorted(wins.values()) == [1, 1, 1]


def prompt_triads(edges: dict) -> tuple[int, int, int]:
    """(n_triads, n_tied, n_cyclic) of one prompt; edges: {(p, q): verdict} with p < q, verdict for p
    as response_a."""
    policies = sorted({p for e in edges for p in e})
    n = tied = cyc = 0
    for x, y, z in combinations(policies, 3):
        vs = (edges.get((x, y)), edges.get((y, z)), edges.get((x, z)))
        if any(v is None for v in vs):
            continue
        n += 1
        if any(v not in ("A", "B") for v in vs):
            tied += 1
        elif is_cyclic(*vs):
            cyc += 1
    return n, tied, cyc


def _edges(d: pd.DataFrame) -> pd.DataFrame:
    """Per comparison: p (the lower-sorted policy), q, and the verdict for p as response_a."""
    swap = d["policy_a"].astype(str) > d["policy_b"].astype(str)
    flip = {"A": "B", "B": "A"}
    return pd.DataFrame({"prompt": d["question"].to_numpy(),
                         "p": np.where(swap, d["policy_b"], d["policy_a"]),
                         "q": np.where(swap, d["policy_a"], d["policy_b"]),
                         "v": np.where(swap, d["verdict"].map(lambda v: flip.get(v, v)), d["verdict"])})


def _bt_hits(e: pd.DataFrame) -> tuple[np.ndarray, int]:
    """Per comparison: 1 / 0.5 / 0 if the BT fit's higher-rated policy won a decided verdict, NaN
    otherwise; and the number of policies."""
    battles = pd.DataFrame({"model_a": e["p"], "model_b": e["q"], "winner": e["v"]})
    ratings = bradley_terry(battles, n_boot=0).set_index("model")["rating"]
    ra, rb = e["p"].map(ratings).to_numpy(float), e["q"].map(ratings).to_numpy(float)
    pred = np.where(ra > rb, "A", np.where(rb > ra, "B", "tie"))
    v = e["v"].to_numpy(dtype=object)
    hit = np.where(pred == "tie", 0.5, (pred == v).astype(float))
    return np.where(np.isin(v, ("A", "B")), hit, np.nan), int(len(ratings))


def triad_table(frame: pd.DataFrame, unparsed: str = "wrong", n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
                ci: float = 0.95) -> pd.DataFrame:
    """Per dataset, subset and annotator whose pairs name both policies: triads and BT agreement
    (module docstring). Columns: TRIAD_COLUMNS."""
    f = _prepare(frame, unparsed)
    f = f[f["policy_a"].notna() & f["policy_b"].notna()] if {"policy_a", "policy_b"} <= set(f.columns) else f.iloc[:0]
    if f.empty:
        return pd.DataFrame(columns=TRIAD_COLUMNS)
    f = canonical(f)
    question = f["prompt_key"] if "prompt_key" in f else f["source_item"]
    # a prompt is one prompt of one subset ('(all)' pools subsets without merging their prompts)
    f = f.assign(question=f["subset"].astype(str) + "|" + question.where(question.notna(), f["source_item"]).astype(str))
    items = per_item_verdicts(f, unparsed, keep=("policy_a", "policy_b", "question"))
    items = items[items["verdict"].isin(("A", "B", "tie"))]
    rows = []
    for (ds, sub, ann), d in with_all(items).groupby(["dataset", "subset", "annotator"], sort=True):
        e = _edges(d)
        hits, n_pol = _bt_hits(e)
        pid = pd.factorize(e["prompt"])[0]
        n_p = int(pid.max()) + 1
        per = [prompt_triads(dict(zip(zip(g["p"], g["q"]), g["v"]))) for _, g in e.groupby(pid, sort=True)]
        tri, tied, cyc = (np.array(x, dtype=float) for x in zip(*per))
        decided = tri - tied
        has_hit = ~np.isnan(hits)
        bt_num = np.bincount(pid[has_hit], hits[has_hit], minlength=n_p)
        bt_den = np.bincount(pid[has_hit], minlength=n_p).astype(float)
        c_lo, c_hi = bootstrap_ratio_ci(cyc, decided, n_boot, seed, ci) if decided.sum() else (np.nan, np.nan)
        b_lo, b_hi = bootstrap_ratio_ci(bt_num, bt_den, n_boot, seed, ci) if bt_den.sum() else (np.nan, np.nan)
        rows.append({"dataset": ds, "subset": sub, "annotator": ann, "kind": d["kind"].iloc[0],
                     "n_prompts": int((tri > 0).sum()), "n_triads": int(tri.sum()), "n_tied": int(tied.sum()),
                     "n_decided": int(decided.sum()), "n_cyclic": int(cyc.sum()),
                     "cyclic_rate": float(cyc.sum() / decided.sum()) if decided.sum() else np.nan,
                     "cyclic_ci_low": c_lo, "cyclic_ci_high": c_hi, "n_policies": n_pol,
                     "n_bt_votes": int(bt_den.sum()),
                     "bt_agreement": float(bt_num.sum() / bt_den.sum()) if bt_den.sum() else np.nan,
                     "bt_ci_low": b_lo, "bt_ci_high": b_hi})
    return pd.DataFrame(rows, columns=TRIAD_COLUMNS)
