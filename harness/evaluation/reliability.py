"""Chance-corrected agreement: Cohen's kappa, Fleiss' kappa, Krippendorff's alpha, macro P/R/F1.

Definitions (all on nominal categories such as 'A', 'B', 'tie', 'unparsed'):
- Cohen's kappa of two raters on the same items: (p_o - p_e) / (1 - p_e), p_o the fraction of items
  where they agree, p_e = sum_c p1(c) * p2(c) from each rater's own category frequencies.
  Defined as 1.0 when p_e == 1 and both raters always agree (a single category), NaN otherwise.
- Fleiss' kappa (items each rated by the same number m >= 2 of raters): with n_ic the raters
  putting item i in category c, P_i = (sum_c n_ic^2 - m) / (m (m - 1)), P_bar = mean_i P_i,
  p_c = sum_i n_ic / (N m), P_e = sum_c p_c^2, kappa = (P_bar - P_e) / (1 - P_e).
- Krippendorff's alpha, nominal, any number of raters per item (items with < 2 ratings are
  ignored): coincidences o_ck = sum_items sum_{ordered rating pairs (c,k)} 1 / (m_i - 1),
  n_c = sum_k o_ck, n = sum_c n_c, alpha = 1 - (n - 1) * sum_{c!=k} o_ck / sum_{c!=k} n_c n_k.
- Macro precision / recall / F1 of predictions against a reference over the classes that occur
  in either (PandaLM's compute_metrics over {tie, 1, 2}): per class TP / (TP + FP), TP / (TP + FN),
  their harmonic mean (0 where undefined), then the unweighted mean over classes.
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
    k = np.where(np.isclose(pe, 1.0), np.where(np.isclose(po, 1.0), 1.0, np.nan), k)
    return k


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
    if np.isclose(p_e, 1.0):
        return 1.0 if np.isclose(p_bar, 1.0) else float("nan")
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


def macro_prf(pred: Sequence, true: Sequence, classes: Sequence | None = None) -> dict:
    """Macro-averaged precision, recall and F1 (see module docstring)."""
    pred, true = [str(x) for x in pred], [str(x) for x in true]
    classes = list(classes) if classes is not None else sorted((set(pred) | set(true)) - {"unparsed"})
    p = np.array(pred)
    t = np.array(true)
    ps, rs, fs = [], [], []
    for c in classes:
        tp = float(np.sum((p == c) & (t == c)))
        fp = float(np.sum((p == c) & (t != c)))
        fn = float(np.sum((p != c) & (t == c)))
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        ps.append(prec)
        rs.append(rec)
        fs.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    if not classes:
        return {"macro_precision": float("nan"), "macro_recall": float("nan"), "macro_f1": float("nan")}
    return {"macro_precision": float(np.mean(ps)), "macro_recall": float(np.mean(rs)), "macro_f1": float(np.mean(fs))}
