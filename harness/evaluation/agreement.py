"""Agreement of annotators with a reference, and position and length bias (`bias_table`).

Input and step 1 (the per-item verdicts): harness/evaluation/items.py. Human-human reliability and
leave-one-out agreement: harness/evaluation/humans.py (re-exported here). Other definitions of
agreement (MT-Bench's vote pairs, the registry of definitions): agreement_defs.py.

Step 2, the reference verdict of each item (`attach_reference`):
  '<annotator>'     that annotator's combined verdict
  'gold'            the combined verdict of the annotator whose id ends in ':gold' (e.g. llmbar:gold)
  'human-majority'  the plurality of the combined verdicts of the human annotators (kind human),
                    counting each once; when the top count is shared there is no reference for the
                    item (it is left out). In `agreement_table` every row is scored on those same
                    items: a non-human against that majority (reference_used 'human majority'), a
                    human against the mode of the OTHER humans (reference_used 'majority of other
                    humans (LOO)'), where k tied modes each count with weight 1/k (alpaca_eval's
                    expected tie-break credit). `attach_reference` keeps the older hard rule for
                    humans (the others' unique plurality; items where the others tie are dropped).
  Items whose reference is missing or unparsed are left out; the reference annotator gets no row.

Step 3, per annotator and group (dataset, subset; '(all)' pools the subsets of a dataset):
  reference_used     which reference the row was scored against (see step 2)
  n                  items labelled by both the annotator and the reference
  agreement          P(verdict == ref) over those n items (ties must match ties)
  agreement_no_ties  the same over items where neither says tie (n_no_ties of them: a sum of weights,
                     so fractional for a human row whose other humans tie), with its CI
  kappa              Cohen's kappa of verdict vs ref over the n items (reliability.py)
  acc_ab / acc_ba    P(v_AB == ref) over items with an AB label (n_ab); same for BA (n_ba)
  acc_avg            pooled accuracy of all per-order labels: (sum correct_AB + sum correct_BA) /
                     (n_ab + n_ba); equals (acc_ab + acc_ba) / 2 when every item has both orders
                     (LLMBar's "correct_average", Acc.)
  acc_both           P(v_AB == ref and v_BA == ref) over items with both orders (n_both)
  position_consistency  P(v_AB == v_BA) over the n_both items, unparsed == unparsed counting as
                     the same answer (LLMBar's "equal", positional agreement Agr.)
  p_first            among per-order labels that pick a side (A/B) and whose order is known: the
                     fraction that pick the response shown first (v_AB == A or v_BA == B); n_first
  p_longer           among items with |len_a - len_b| > min_len_diff characters (30, as
                     alpaca_eval) where the combined verdict picks a side: the fraction picking the
                     longer response (n_longer); ref_p_longer is the reference's own rate on the
                     items where it picks a side, for comparison
  macro_precision / macro_recall / macro_f1  of verdict vs ref (reliability.macro_prf) over the
                     classes named in macro_classes ('observed' by default, or 'pandalm': A,B,tie)
  n_unparsed         items whose combined verdict is unparsed
  *_ci_low/_ci_high  95% percentile bootstrap over items (bootstrap.py) for agreement,
                     agreement_no_ties, kappa, acc_avg (a human's tied-reference rows move together)
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from . import bias
from .bootstrap import DEFAULT_N_BOOT, bootstrap_ci, bootstrap_mean_ci, bootstrap_ratio_ci
from .humans import human_loo_agreement, human_reliability, pairwise_kappa
from .items import (ALL, CATS, DECISIVE, DEFAULT_MIN_LEN_DIFF, UNPARSED_MODES, VERDICT_SCORE, _human_counts,
                    _plurality, human_majority, per_item_verdicts, with_all as _with_all)
from .reliability import kappa_from_confusion, macro_prf

AGREEMENT_COLUMNS = [
    "dataset", "subset", "annotator", "kind", "reference", "reference_used", "n", "agreement", "agreement_ci_low",
    "agreement_ci_high", "n_no_ties", "agreement_no_ties", "agreement_no_ties_ci_low", "agreement_no_ties_ci_high",
    "kappa", "kappa_ci_low", "kappa_ci_high", "n_ab",
    "acc_ab", "n_ba", "acc_ba", "acc_avg", "acc_avg_ci_low", "acc_avg_ci_high", "n_both", "acc_both",
    "position_consistency", "n_first", "p_first", "n_longer", "p_longer", "ref_p_longer", "macro_precision",
    "macro_recall", "macro_f1", "macro_classes", "n_unparsed",
]



def reference_annotators(items: pd.DataFrame, reference: str) -> list[str]:
    """The annotators that form the reference and so get no agreement row of their own."""
    names = sorted(items["annotator"].unique())
    if reference == "human-majority":
        return []
    if reference == "gold":
        gold = [a for a in names if a == "gold" or a.split("@")[0].endswith(":gold")]
        if not gold:
            raise ValueError(f"reference 'gold': no annotator id ends in ':gold' (annotators: {', '.join(names)})")
        return gold
    if reference not in names:
        raise ValueError(f"reference {reference!r} is not an annotator here; use human-majority, gold, or one of: "
                         f"{', '.join(names)}")
    return [reference]


def attach_reference(items: pd.DataFrame, reference: str = "human-majority") -> pd.DataFrame:
    """Add column `ref` (reference verdict for that row's item, None where there is none)."""
    items = items.copy()
    if reference == "human-majority":
        counts = _human_counts(items)
        c = counts.reindex(items["item"]).fillna(0).to_numpy(dtype=float)
        own = np.zeros_like(c)
        is_h = ((items["kind"] == "human") & items["verdict"].isin(CATS)).to_numpy()
        col = {v: i for i, v in enumerate(CATS)}
        rows = np.flatnonzero(is_h)
        own[rows, [col[v] for v in items["verdict"].to_numpy()[rows]]] = 1
        items["ref"] = _plurality(c - own)
        return items
    refs = reference_annotators(items, reference)
    r = items[items["annotator"].isin(refs) & items["verdict"].isin(CATS)].drop_duplicates("item")
    items["ref"] = items["item"].map(r.set_index("item")["verdict"])
    items["ref"] = items["ref"].astype(object).where(items["ref"].notna(), None)
    return items



def _metrics(d: pd.DataFrame, min_len_diff: float, n_boot: int, seed: int, ci: float,
             macro_classes="observed") -> dict:
    """Metrics of one annotator's rows. Rows carry a weight `_w` (1, or 1/k for each of k tied reference
    verdicts of one item) whose sum per item is 1; n and every CI are over items (percentile bootstrap)."""
    gid = pd.factorize(d["item"])[0]
    n = int(gid.max() + 1) if len(d) else 0
    w = d["_w"].to_numpy(dtype=float) if "_w" in d else np.ones(len(d))
    per_item = (lambda x: np.bincount(gid, w * x, minlength=n))
    v = d["verdict"].to_numpy(dtype=object)
    ref = d["ref"].to_numpy(dtype=object)
    eq = (v == ref).astype(float)
    credit = per_item(eq)
    out: dict = {"n": n, "agreement": float(credit.mean()) if n else np.nan}
    out["agreement_ci_low"], out["agreement_ci_high"] = bootstrap_mean_ci(credit, n_boot, seed, ci)
    nt = ((v != "tie") & (ref != "tie")).astype(float)
    num_nt, den_nt = per_item(eq * nt), per_item(nt)
    out["n_no_ties"] = float(den_nt.sum()) if not np.allclose(den_nt, np.round(den_nt)) else int(round(den_nt.sum()))
    out["agreement_no_ties"] = float(num_nt.sum() / den_nt.sum()) if den_nt.sum() > 0 else np.nan
    out["agreement_no_ties_ci_low"], out["agreement_no_ties_ci_high"] = bootstrap_ratio_ci(num_nt, den_nt, n_boot,
                                                                                         seed, ci)
    vs, rs = [str(x) for x in v], [str(x) for x in ref]
    (cv, cr), cats = _codes_of(vs, rs)
    k = len(cats)
    cells = np.zeros((n, k * k))
    np.add.at(cells, (gid, cv * k + cr), w)
    out["kappa"] = float(kappa_from_confusion(cells.sum(axis=0).reshape(k, k))) if n else np.nan

    def kappa_stat(idx):
        counts = np.stack([np.bincount(r, minlength=n) for r in idx]).astype(float)
        return kappa_from_confusion((counts @ cells).reshape(-1, k, k))

    out["kappa_ci_low"], out["kappa_ci_high"] = bootstrap_ci(kappa_stat, n, n_boot, seed, ci)
    ab, ba = d["v_AB"].to_numpy(dtype=object), d["v_BA"].to_numpy(dtype=object)
    has_ab, has_ba = d["v_AB"].notna().to_numpy(), d["v_BA"].notna().to_numpy()
    ok_ab, ok_ba = has_ab & (ab == ref), has_ba & (ba == ref)
    h_ab, h_ba, o_ab, o_ba = (per_item(x.astype(float)) for x in (has_ab, has_ba, ok_ab, ok_ba))
    out["n_ab"], out["n_ba"] = int(round(h_ab.sum())), int(round(h_ba.sum()))
    out["acc_ab"] = float(o_ab.sum() / h_ab.sum()) if h_ab.sum() else np.nan
    out["acc_ba"] = float(o_ba.sum() / h_ba.sum()) if h_ba.sum() else np.nan
    n_orders = h_ab + h_ba
    out["acc_avg"] = float((o_ab.sum() + o_ba.sum()) / n_orders.sum()) if n_orders.sum() else np.nan
    out["acc_avg_ci_low"], out["acc_avg_ci_high"] = bootstrap_ratio_ci(o_ab + o_ba, n_orders, n_boot, seed, ci)
    both = has_ab & has_ba
    h_both = per_item(both.astype(float))
    out["n_both"] = int(round(h_both.sum()))
    out["acc_both"] = float(per_item((ok_ab & ok_ba).astype(float)).sum() / h_both.sum()) if h_both.sum() else np.nan
    # reference-free figures: once per item
    first = ~pd.Series(gid).duplicated().to_numpy()
    ab1, ba1, v1 = ab[first], ba[first], v[first]
    both1 = both[first]
    # unparsed is already a verdict or gone (per_item_verdicts' `unparsed`): compared as a value
    out["position_consistency"] = _nan(bias.share(bias.consistent(ab1[both1], ba1[both1], "equal"))["value"])
    known = d["order_known"].to_numpy(dtype=bool)[first]
    p_first = bias.share(bias.first_shown_by_order(ab1, ba1, known))
    out["n_first"], out["p_first"] = p_first["n"], _nan(p_first["value"])
    longer = bias.longer_side(d["len_a"].to_numpy(dtype=float), d["len_b"].to_numpy(dtype=float), min_len_diff)
    p_longer = bias.share(bias.prefers_longer(v1, longer[first]))
    out["n_longer"], out["p_longer"] = p_longer["n"], _nan(p_longer["value"])
    mr = np.isin(longer, DECISIVE) & np.isin(ref, DECISIVE)
    out["ref_p_longer"] = float((w * (ref == longer))[mr].sum() / w[mr].sum()) if mr.any() else np.nan
    out.update(macro_prf(vs, rs, macro_classes, weights=w) if n else
               {"macro_precision": np.nan, "macro_recall": np.nan, "macro_f1": np.nan, "macro_classes": ""})
    out["n_unparsed"] = int((v1 == "unparsed").sum())
    return out


def _nan(x):
    return np.nan if x is None else x


def _codes_of(a, b):
    cats = sorted(set(a) | set(b))
    index = {c: i for i, c in enumerate(cats)}
    return [np.array([index[x] for x in arr], dtype=np.int64) for arr in (a, b)], cats


REF_HUMAN_MAJORITY = "human majority"
REF_HUMAN_LOO = "majority of other humans (LOO)"


def _human_reference_rows(items: pd.DataFrame) -> pd.DataFrame:
    """Rows with `ref`, `_w`, `reference_used` for reference 'human-majority' (module docstring, step 2):
    the items are those with a unique plurality of all humans; a non-human is scored against it, a human
    against the mode(s) of the OTHER humans on the same items, each of k tied modes with weight 1/k."""
    counts = _human_counts(items)
    full = pd.Series(_plurality(counts.to_numpy()), index=counts.index)
    full = full[full.notna()]
    items = items[items["item"].isin(full.index)].copy()
    is_h = ((items["kind"] == "human") & items["verdict"].isin(CATS)).to_numpy()
    ai = items[~is_h].assign(ref=lambda x: x["item"].map(full), _w=1.0, reference_used=REF_HUMAN_MAJORITY)
    hum = items[is_h]
    c = counts.reindex(hum["item"]).to_numpy(dtype=float).copy()
    col = {v: i for i, v in enumerate(CATS)}
    c[np.arange(len(hum)), [col[v] for v in hum["verdict"]]] -= 1
    top = c.max(axis=1, initial=0)
    is_mode = (c == top[:, None]) & (top[:, None] > 0)
    parts = []
    for j, cat in enumerate(CATS):
        sel = is_mode[:, j]
        parts.append(hum[sel].assign(ref=cat, _w=1.0 / is_mode[sel].sum(axis=1), reference_used=REF_HUMAN_LOO))
    return pd.concat([ai, *parts], ignore_index=True)


def agreement_table(frame: pd.DataFrame, reference: str = "human-majority", unparsed: str = "wrong",
                    annotators: Iterable[str] | None = None, n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
                    ci: float = 0.95, min_len_diff: float = DEFAULT_MIN_LEN_DIFF,
                    macro_classes="observed") -> pd.DataFrame:
    """Agreement of every annotator with `reference`, per dataset/subset. Columns: AGREEMENT_COLUMNS.
    `macro_classes`: 'observed' or 'pandalm' (always A, B, tie), see reliability.macro_prf."""
    items = per_item_verdicts(frame, unparsed)
    if items.empty:
        return pd.DataFrame(columns=AGREEMENT_COLUMNS)
    refs = set(reference_annotators(items, reference))
    if reference == "human-majority":
        items = _human_reference_rows(items)
    else:
        items = attach_reference(items, reference).assign(_w=1.0, reference_used=reference)
    items = items[~items["annotator"].isin(refs) & items["ref"].notna()]
    if annotators:
        wanted = set(annotators)
        items = items[items["annotator"].isin(wanted)]
    items = _with_all(items)
    rows = []
    for (ds, sub, ann), d in items.groupby(["dataset", "subset", "annotator"], sort=True):
        row = {"dataset": ds, "subset": sub, "annotator": ann, "kind": d["kind"].iloc[0], "reference": reference,
               "reference_used": d["reference_used"].iloc[0]}
        row.update(_metrics(d, min_len_diff, n_boot, seed, ci, macro_classes))
        rows.append(row)
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)


def bias_table(frame: pd.DataFrame, unparsed: str = "wrong", min_len_diff: float = DEFAULT_MIN_LEN_DIFF,
               n_boot: int = DEFAULT_N_BOOT, seed: int = 0, ci: float = 0.95) -> pd.DataFrame:
    """Position and length bias of every annotator, no reference needed.

    Columns: dataset, subset, annotator, kind, n_items, n_first, p_first, p_first_ci_low,
    p_first_ci_high, n_both, position_consistency, n_longer, p_longer, p_longer_ci_low,
    p_longer_ci_high, tie_rate, unparsed_rate (definitions as in the module docstring).
    """
    items = _with_all(per_item_verdicts(frame, unparsed))
    cols = ["dataset", "subset", "annotator", "kind", "n_items", "n_first", "p_first", "p_first_ci_low",
            "p_first_ci_high", "n_both", "position_consistency", "n_longer", "p_longer", "p_longer_ci_low",
            "p_longer_ci_high", "tie_rate", "unparsed_rate"]
    rows = []
    for (ds, sub, ann), d in items.groupby(["dataset", "subset", "annotator"], sort=True):
        ab, ba = d["v_AB"].to_numpy(dtype=object), d["v_BA"].to_numpy(dtype=object)
        first = bias.share(bias.first_shown_by_order(ab, ba, d["order_known"].to_numpy(dtype=bool)), n_boot, seed, ci)
        cons = bias.share(bias.consistent(ab, ba, "equal"))
        v = d["verdict"].to_numpy(dtype=object)
        side = bias.longer_side(d["len_a"].to_numpy(dtype=float), d["len_b"].to_numpy(dtype=float), min_len_diff)
        longer = bias.share(bias.prefers_longer(v, side), n_boot, seed, ci)
        rows.append({
            "dataset": ds, "subset": sub, "annotator": ann, "kind": d["kind"].iloc[0], "n_items": len(d),
            "n_first": first["n"], "p_first": _nan(first["value"]),
            "p_first_ci_low": _nan(first["ci_low"]), "p_first_ci_high": _nan(first["ci_high"]),
            "n_both": cons["n"], "position_consistency": _nan(cons["value"]),
            "n_longer": longer["n"], "p_longer": _nan(longer["value"]),
            "p_longer_ci_low": _nan(longer["ci_low"]), "p_longer_ci_high": _nan(longer["ci_high"]),
            "tie_rate": float((v == "tie").mean()), "unparsed_rate": float((v == "unparsed").mean()),
        })
    return pd.DataFrame(rows, columns=cols)


__all__ = ["ALL", "AGREEMENT_COLUMNS", "CATS", "DECISIVE", "DEFAULT_MIN_LEN_DIFF", "UNPARSED_MODES", "VERDICT_SCORE",
           "agreement_table", "attach_reference", "bias_table", "human_loo_agreement", "human_majority",
           "human_reliability", "pairwise_kappa", "per_item_verdicts", "reference_annotators"]
