"""Human-human reliability and leave-one-out agreement with a human panel.

Humans (`human_reliability`, `human_loo_agreement`, `pairwise_kappa`), on items with >= 2 human
verdicts (parsed, combined per human):
  ceiling            human-human agreement as alpaca_eval computes it (leave-one-out): each human's
                     verdict against the mode of the other humans on that item; when several
                     verdicts share the mode, the credit is 1/(number of modes) if the human's verdict
                     is one of them (the expectation of a random tie-break); averaged over all
                     (human, item) comparisons
  loo_agreement      the same credit for any annotator: humans against the others' mode; other
                     annotators against the mode of the humans minus one, averaged over which human
                     is left out (so an AI annotator is measured against as many humans as a human is)
  fleiss_kappa       over the items rated by the most common number m >= 2 of humans (n_fleiss)
  krippendorff_alpha nominal, over all items with >= 2 human ratings
  pairwise kappa     Cohen's kappa for each two humans on the items both rated
  `kinds` (default ("human",)) names the panel: kinds=("simulated-human",) computes the same figures
  for the simulated raters of judges/simulated.py (the simulated human-human ceiling).
"""
from __future__ import annotations

from itertools import combinations
from typing import Sequence

import numpy as np
import pandas as pd

from .bootstrap import DEFAULT_N_BOOT, bootstrap_mean_ci, bootstrap_ratio_ci
from .items import CATS, per_item_verdicts, with_all as _with_all
from .reliability import cohen_kappa, fleiss_kappa, krippendorff_alpha_nominal


def _mode_credit(counts: np.ndarray, verdict_idx: np.ndarray) -> np.ndarray:
    """Credit of a verdict against the mode of `counts` rows: 1/k if among the k modes, else 0."""
    top = counts.max(axis=1)
    is_mode = (counts == top[:, None]) & (top[:, None] > 0)
    k = is_mode.sum(axis=1)
    hit = is_mode[np.arange(len(counts)), verdict_idx]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(k > 0, hit / np.where(k > 0, k, 1), np.nan)


def _credit_or_zero(counts: np.ndarray, vi: np.ndarray) -> np.ndarray:
    """_mode_credit, 0 for an unparsed verdict (vi -1)."""
    return np.where(vi >= 0, _mode_credit(counts, np.maximum(vi, 0)), 0.0)


def _loo_credits(c: np.ndarray, vi: np.ndarray, is_human: bool) -> np.ndarray:
    """Per row (item counts c over CATS, verdict index vi): a human against the others' mode; any other
    annotator against the mode of the humans minus one, averaged over which human is left out
    (each verdict class k is left out c[k] times)."""
    rows = np.arange(len(c))
    if is_human:
        others = c.copy()
        others[rows, vi] -= 1
        return _mode_credit(others, vi)
    acc = np.zeros(len(c))
    for k in range(len(CATS)):
        others = c.copy()
        others[:, k] -= 1
        with np.errstate(invalid="ignore"):
            acc += np.where(c[:, k] > 0, c[:, k] * _credit_or_zero(others, vi), 0.0)
    return acc / c.sum(axis=1)


def human_loo_agreement(frame: pd.DataFrame, unparsed: str = "wrong", n_boot: int = DEFAULT_N_BOOT,
                        seed: int = 0, ci: float = 0.95, kinds: Sequence[str] = ("human",)) -> pd.DataFrame:
    """alpaca_eval-style leave-one-out agreement of every annotator with the humans (module docs).

    `kinds`: the annotator kinds that form the panel (default the humans; ("simulated-human",) for
    the simulated raters of judges/simulated.py, measured the same way).
    Columns: dataset, subset, annotator, kind, n_items, loo_agreement, ci_low, ci_high.
    """
    items = _with_all(per_item_verdicts(frame, unparsed))
    cols = ["dataset", "subset", "annotator", "kind", "n_items", "loo_agreement", "ci_low", "ci_high"]
    col = {v: i for i, v in enumerate(CATS)}
    rows = []
    for (ds, sub), g in items.groupby(["dataset", "subset"], sort=True):
        hum = g[g["kind"].isin(kinds) & g["verdict"].isin(CATS)]
        counts = hum.groupby(["item", "verdict"]).size().unstack(fill_value=0).reindex(columns=list(CATS), fill_value=0)
        multi = counts[counts.sum(axis=1) >= 2]
        if multi.empty:
            continue
        for ann, d in g[g["item"].isin(multi.index)].groupby("annotator", sort=True):
            is_human = d["kind"].isin(kinds).all()
            if is_human:
                d = d[d["verdict"].isin(CATS)]  # an unparsed human verdict is not part of the human panel
            c = multi.reindex(d["item"]).to_numpy(dtype=float)
            vi = d["verdict"].map(col).fillna(-1).to_numpy(dtype=int)
            credits = _loo_credits(c, vi, is_human)
            credits = np.array([x for x in credits if not np.isnan(x)])
            if credits.size == 0:
                continue
            lo, hi = bootstrap_mean_ci(credits, n_boot, seed, ci)
            rows.append({"dataset": ds, "subset": sub, "annotator": ann, "kind": d["kind"].iloc[0],
                         "n_items": int(credits.size), "loo_agreement": float(credits.mean()), "ci_low": lo,
                         "ci_high": hi})
    return pd.DataFrame(rows, columns=cols)


def pairwise_kappa(frame: pd.DataFrame, unparsed: str = "wrong", kinds: Sequence[str] = ("human",)) -> pd.DataFrame:
    """Cohen's kappa and raw agreement for each two annotators of the given kinds, per group.

    Columns: dataset, subset, annotator_1, annotator_2, n, agreement, kappa.
    """
    items = _with_all(per_item_verdicts(frame, unparsed))
    items = items[items["kind"].isin(kinds)]
    cols = ["dataset", "subset", "annotator_1", "annotator_2", "n", "agreement", "kappa"]
    rows = []
    for (ds, sub), g in items.groupby(["dataset", "subset"], sort=True):
        wide = g.pivot_table(index="item", columns="annotator", values="verdict", aggfunc="first")
        for a1, a2 in combinations(sorted(wide.columns), 2):
            both = wide[[a1, a2]].dropna()
            if both.empty:
                continue
            rows.append({"dataset": ds, "subset": sub, "annotator_1": a1, "annotator_2": a2, "n": len(both),
                         "agreement": float((both[a1] == both[a2]).mean()),
                         "kappa": cohen_kappa(both[a1].tolist(), both[a2].tolist())})
    return pd.DataFrame(rows, columns=cols)


def human_reliability(frame: pd.DataFrame, unparsed: str = "wrong", n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
                      ci: float = 0.95, kinds: Sequence[str] = ("human",)) -> pd.DataFrame:
    """Per group with >= 2 humans on some item: ceiling (LOO, alpaca_eval), Fleiss' kappa, Krippendorff's alpha.

    `kinds`: which annotators count as the raters (default the humans only; ("simulated-human",)
    gives the simulated human-human ceiling; n_humans then counts those raters).

    Columns: dataset, subset, n_humans, n_items, ceiling, ceiling_ci_low, ceiling_ci_high, n_fleiss,
    raters_fleiss, fleiss_kappa, krippendorff_alpha, pairwise_kappa_mean.
    """
    cols = ["dataset", "subset", "n_humans", "n_items", "ceiling", "ceiling_ci_low", "ceiling_ci_high", "n_fleiss",
            "raters_fleiss", "fleiss_kappa", "krippendorff_alpha", "pairwise_kappa_mean"]
    pk = pairwise_kappa(frame, unparsed, kinds)
    items = _with_all(per_item_verdicts(frame, unparsed))
    col = {v: i for i, v in enumerate(CATS)}
    rows = []
    for (ds, sub), g in items.groupby(["dataset", "subset"], sort=True):
        hum = g[g["kind"].isin(kinds) & g["verdict"].isin(CATS)]
        by_item = hum.groupby("item")["verdict"].apply(list)
        by_item = by_item[by_item.apply(len) >= 2]
        if by_item.empty:
            continue
        # the ceiling, per (human, item) comparison, so that it can be bootstrapped over items
        per_item_credit, per_item_n = [], []
        for verdicts in by_item:
            c = np.bincount([col[v] for v in verdicts], minlength=3).astype(float)
            credit = 0.0
            for v in verdicts:
                others = c.copy()
                others[col[v]] -= 1
                credit += _mode_credit(others[None], np.array([col[v]]))[0]
            per_item_credit.append(credit)
            per_item_n.append(len(verdicts))
        num, den = np.array(per_item_credit), np.array(per_item_n, dtype=float)
        lo, hi = bootstrap_ratio_ci(num, den, n_boot, seed, ci)
        sizes = by_item.apply(len)
        m = int(sizes.mode().max())
        fl_items = by_item[sizes == m]
        fl_counts = np.array([np.bincount([col[v] for v in vs], minlength=3) for vs in fl_items])
        pk_g = pk[(pk["dataset"] == ds) & (pk["subset"] == sub)]
        rows.append({"dataset": ds, "subset": sub, "n_humans": int(hum["annotator"].nunique()),
                     "n_items": int(len(by_item)), "ceiling": float(num.sum() / den.sum()), "ceiling_ci_low": lo,
                     "ceiling_ci_high": hi, "n_fleiss": int(len(fl_items)), "raters_fleiss": m,
                     "fleiss_kappa": fleiss_kappa(fl_counts),
                     "krippendorff_alpha": krippendorff_alpha_nominal(list(by_item)),
                     "pairwise_kappa_mean": float(pk_g["kappa"].mean()) if len(pk_g) else np.nan})
    return pd.DataFrame(rows, columns=cols)
