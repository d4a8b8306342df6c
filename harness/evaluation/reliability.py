"""Chance-corrected agreement: Cohen's kappa, Fleiss' kappa, Krippendorff's alpha, macro P/R/F1.

Definitions (all on nominal categories such as 'A', 'B', 'tie', 'unparsed'):
- Cohen's kappa of two raters on the same items: (p_o - p_e) / (1 - p_e), p_o the fraction of items
  where they agree, p_e = sum_c p1(c) * p2(c) from each rater's own category frequencies.
  Degenerate only when p_e == 1 exactly, i.e. both raters use one and the same category: then 1.0
  (sklearn's cohen_kappa_score gives NaN there). Near-constant raters (p_e = 1 - 1e-5) get the formula.
- Fleiss' kappa (items each rated by the same number m >= 2 of raters): with n_ic the raters
  putting item i in category c, P_i = (sum_c n_ic^2 - m) / (m (m - 1)), P_bar = mean_i P_i,
  p_c = sum_i n_ic / (N m), P_e = sum_c p_c^2, kappa = (P_bar - P_e) / (1 - P_e); 1.0 only when every
  rating is the same category (statsmodels gives NaN there).
- Krippendorff's alpha, nominal, any number of raters per item (items with < 2 ratings are
  ignored): coincidences o_ck = sum_items sum_{ordered rating pairs (c,k)} 1 / (m_i - 1),
  n_c = sum_k o_ck, n = sum_c n_c, alpha = 1 - (n - 1) * sum_{c!=k} o_ck / sum_{c!=k} n_c n_k.
- Macro precision / recall / F1 of predictions against a reference: per class TP / (TP + FP),
  TP / (TP + FN), their harmonic mean (0 where undefined), then the unweighted mean over the classes
  named by `classes`: 'observed' (default: those occurring in either, 'unparsed' excepted), 'pandalm'
  (always A, B, tie, as PandaLM's compute_metrics over {tie, 1, 2}) or an explicit list; the result
  says which (`macro_classes`, comma-joined).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def _codes(*arrays: Sequence) -> tuple[list[np.ndarray], list]:
    cats = sorted({str(x) for arr in arrays for x in arr})
    index = {c: i for i, c in enumerate(cats)}
    return [np.array([index[str(x)] for x in arr], dtype=np.int64) for arr in arrays], cats


def kappa_from_confusion(conf: np.ndarray) -> np.ndarray:
    """Cohen's kappa from confusion counts; conf has shape (..., k, k). Vectorised over leading dims."""
    conf = np.asarray(conf, dtype=float)
    n = conf.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        po = np.trace(conf, axis1=-2, axis2=-1) / n
        pe = (conf.sum(axis=-1) * conf.sum(axis=-2)).sum(axis=-1) / n ** 2
        k = (po - pe) / (1 - pe)
    # p_e == 1 only when both marginals sit on one and the same category (then p_o == 1 too)
    rows_used = (conf.sum(axis=-1) > 0).sum(axis=-1)
    cols_used = (conf.sum(axis=-2) > 0).sum(axis=-1)
    single = (rows_used == 1) & (cols_used == 1) & (np.trace(conf, axis1=-2, axis2=-1) == n)
    return np.where(single, 1.0, k)


def cohen_kappa(a: Sequence, b: Sequence) -> float:
    """Cohen's kappa of two equally long label sequences (see module docstring)."""
    if len(a) != len(b):
        raise ValueError(f"cohen_kappa: {len(a)} vs {len(b)} labels")
    if len(a) == 0:
        return float("nan")
    (ca, cb), cats = _codes(a, b)
    k = len(cats)
    conf = np.bincount(ca * k + cb, minlength=k * k).reshape(k, k)
    return float(kappa_from_confusion(conf))


def cohen_kappa_bootstrap(a: Sequence, b: Sequence, idx: np.ndarray) -> np.ndarray:
    """Kappa for each row of an (n_boot, n) index matrix: one bincount, no Python loop."""
    (ca, cb), cats = _codes(a, b)
    k = len(cats)
    cell = (ca * k + cb)[idx]  # (B, n)
    B = idx.shape[0]
    flat = (cell + (np.arange(B)[:, None] * k * k)).ravel()
    conf = np.bincount(flat, minlength=B * k * k).reshape(B, k, k)
    return kappa_from_confusion(conf)


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa from an (items, categories) count matrix with the same row sum m >= 2."""
    counts = np.asarray(counts, dtype=float)
    if counts.ndim != 2 or counts.shape[0] == 0:
        return float("nan")
    m = counts.sum(axis=1)
    if not np.allclose(m, m[0]) or m[0] < 2:
        raise ValueError("fleiss_kappa needs every item rated by the same number (>= 2) of raters")
    m = m[0]
    n_items = counts.shape[0]
    p_i = ((counts ** 2).sum(axis=1) - m) / (m * (m - 1))
    p_bar = p_i.mean()
    p_c = counts.sum(axis=0) / (n_items * m)
    p_e = (p_c ** 2).sum()
    if (p_c > 0).sum() == 1:  # every rating the same category: P_bar = P_e = 1
        return 1.0
    return float((p_bar - p_e) / (1 - p_e))


def krippendorff_alpha_nominal(units: Sequence[Sequence]) -> float:
    """Krippendorff's alpha (nominal) from a list of items, each the list of its ratings."""
    units = [[str(v) for v in u] for u in units if len(u) >= 2]
    if not units:
        return float("nan")
    cats = sorted({v for u in units for v in u})
    index = {c: i for i, c in enumerate(cats)}
    k = len(cats)
    o = np.zeros((k, k))
    for u in units:
        cnt = np.bincount([index[v] for v in u], minlength=k).astype(float)
        # ordered pairs of distinct ratings within the unit, weighted 1/(m_u - 1)
        o += (np.outer(cnt, cnt) - np.diag(cnt)) / (len(u) - 1)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    off = ~np.eye(k, dtype=bool)
    d_o = o[off].sum()
    d_e = np.outer(n_c, n_c)[off].sum()
    if d_e == 0:
        return 1.0 if d_o == 0 else float("nan")
    return float(1 - (n - 1) * d_o / d_e)


MACRO_CLASSES = {"pandalm": ("A", "B", "tie")}


def macro_prf(pred: Sequence, true: Sequence, classes: str | Sequence | None = "observed",
              weights: Sequence[float] | None = None) -> dict:
    """Macro-averaged precision, recall and F1 over `classes` (see module docstring); `weights` per
    (pred, true) row, e.g. 1/k for each of k tied reference verdicts of one item."""
    pred, true = [str(x) for x in pred], [str(x) for x in true]
    wt = np.ones(len(pred)) if weights is None else np.asarray(weights, dtype=float)
    if classes is None or classes == "observed":
        classes = sorted((set(pred) | set(true)) - {"unparsed"})
    elif isinstance(classes, str):
        if classes not in MACRO_CLASSES:
            raise ValueError(f"macro classes {classes!r}: use 'observed', {', '.join(map(repr, MACRO_CLASSES))} "
                             f"or a list of classes")
        classes = list(MACRO_CLASSES[classes])
    classes = list(classes)
    p = np.array(pred)
    t = np.array(true)
    ps, rs, fs = [], [], []
    for c in classes:
        tp = float(np.sum(wt * ((p == c) & (t == c))))
        fp = float(np.sum(wt * ((p == c) & (t != c))))
        fn = float(np.sum(wt * ((p != c) & (t == c))))
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        ps.append(prec)
        rs.append(rec)
        fs.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    names = ",".join(classes)
    if not classes:
        return {"macro_precision": float("nan"), "macro_recall": float("nan"), "macro_f1": float("nan"),
                "macro_classes": names}
    return {"macro_precision": float(np.mean(ps)), "macro_recall": float(np.mean(rs)), "macro_f1": float(np.mean(fs)),
            "macro_classes": names}
