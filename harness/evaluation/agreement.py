"""Agreement of annotators with a reference, position and length bias, human-human reliability.

Input: a long label frame, one row per label (see `frames.label_frame`), with columns
  item         what was judged: the source record (e.g. 'pandalm:17') or the pair_id
  annotator    display name (annotator id, or 'id@version' when one id has several versions)
  kind         human | simulated-human | llm | reward_model | rule ('human-majority' and the
               human tables below read kind 'human' only unless given other `kinds`)
  verdict      canonical: 'A' (response_a better), 'B', 'tie', 'unparsed'
  shown_order  'AB' (response_a shown first) or 'BA'
  optional: p_a, dataset, subset, len_a, len_b (characters), order_known (bool), label_id.

Step 1, per (annotator, item) (`per_item_verdicts`):
  v_AB / v_BA   the annotator's first verdict when the pair was shown in that order
  verdict       the combined verdict over all its labels of the item, as records.combine_orders:
                mean p_a over parsed labels if all have p_a, else mean score (A=1, tie=.5, B=0);
                > .5 -> A, < .5 -> B, == .5 -> tie; 'unparsed' if no label parsed; and, as
                MT-Bench does, 'tie' when v_AB and v_BA are both parsed and differ (order-inconsistent).
  `unparsed` option: 'wrong' (default; unparsed stays a verdict of its own, so it counts as a
  disagreement / a wrong answer), 'tie' (read it as a tie: PandaLM's compute_metrics does this with
  gpt-3.5's "garbage"), 'drop' (remove those labels).

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
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from . import bias
from .bootstrap import DEFAULT_N_BOOT, bootstrap_ci, bootstrap_mean_ci, bootstrap_ratio_ci
from .reliability import (cohen_kappa, fleiss_kappa, kappa_from_confusion, krippendorff_alpha_nominal,
                          macro_prf)

VERDICT_SCORE = {"A": 1.0, "B": 0.0, "tie": 0.5}
DECISIVE = ("A", "B")
CATS = ("A", "B", "tie")
ALL = "(all)"
UNPARSED_MODES = ("wrong", "tie", "drop")
DEFAULT_MIN_LEN_DIFF = 30

AGREEMENT_COLUMNS = [
    "dataset", "subset", "annotator", "kind", "reference", "reference_used", "n", "agreement", "agreement_ci_low",
    "agreement_ci_high", "n_no_ties", "agreement_no_ties", "agreement_no_ties_ci_low", "agreement_no_ties_ci_high",
    "kappa", "kappa_ci_low", "kappa_ci_high", "n_ab",
    "acc_ab", "n_ba", "acc_ba", "acc_avg", "acc_avg_ci_low", "acc_avg_ci_high", "n_both", "acc_both",
    "position_consistency", "n_first", "p_first", "n_longer", "p_longer", "ref_p_longer", "macro_precision",
    "macro_recall", "macro_f1", "macro_classes", "n_unparsed",
]


def _prepare(frame: pd.DataFrame, unparsed: str) -> pd.DataFrame:
    missing = {"item", "annotator", "verdict", "shown_order"} - set(frame.columns)
    if missing:
        raise ValueError(f"label frame lacks columns {sorted(missing)}")
    if unparsed not in UNPARSED_MODES:
        raise ValueError(f"unparsed must be one of {UNPARSED_MODES}, got {unparsed!r}")
    f = frame.copy()
    defaults = {"kind": "unknown", "dataset": None, "subset": None, "p_a": np.nan, "len_a": np.nan,
                "len_b": np.nan, "order_known": True}
    for col, val in defaults.items():
        if col not in f.columns:
            f[col] = val
    f["dataset"] = f["dataset"].fillna("(none)")
    f["subset"] = f["subset"].fillna("(none)")
    f["p_a"] = pd.to_numeric(f["p_a"], errors="coerce")
    if "label_id" in f.columns:
        f = f.sort_values("label_id", kind="stable")
    if unparsed == "tie":
        bad = f["verdict"] == "unparsed"
        f.loc[bad, "verdict"] = "tie"
        f.loc[bad, "p_a"] = np.nan
    elif unparsed == "drop":
        f = f[f["verdict"] != "unparsed"]
    return f


def per_item_verdicts(frame: pd.DataFrame, unparsed: str = "wrong", keep: Sequence[str] = ()) -> pd.DataFrame:
    """One row per (annotator, item): combined verdict, first verdict in each order (module docs).

    Columns: annotator, item, kind, dataset, subset, verdict, value, v_AB, v_BA, n_labels, len_a,
    len_b, order_known, and the first value of each column in `keep`.
    """
    f = _prepare(frame, unparsed)
    keys = ["annotator", "item"]
    if f.empty:
        return pd.DataFrame(columns=keys + ["kind", "dataset", "subset", "verdict", "value", "v_AB", "v_BA",
                                            "n_labels", "len_a", "len_b", "order_known", *keep])
    usable = f["verdict"] != "unparsed"
    f = f.assign(_usable=usable.astype(int), _score=f["verdict"].map(VERDICT_SCORE).where(usable, 0.0),
                 _has_p=(usable & f["p_a"].notna()).astype(int), _p=f["p_a"].where(usable & f["p_a"].notna(), 0.0),
                 _known=f["order_known"].astype(bool))
    g = f.groupby(keys, sort=False)
    out = g.agg(kind=("kind", "first"), dataset=("dataset", "first"), subset=("subset", "first"),
                n_labels=("verdict", "size"), n_usable=("_usable", "sum"), n_p=("_has_p", "sum"),
                sum_p=("_p", "sum"), sum_s=("_score", "sum"), len_a=("len_a", "first"), len_b=("len_b", "first"),
                order_known=("_known", "all"), **{c: (c, "first") for c in keep})
    with np.errstate(invalid="ignore", divide="ignore"):
        use_p = (out["n_p"] == out["n_usable"]) & (out["n_usable"] > 0)
        value = np.where(use_p, out["sum_p"] / out["n_p"].where(out["n_p"] > 0, 1),
                         out["sum_s"] / out["n_usable"].where(out["n_usable"] > 0, 1))
    value = np.where(out["n_usable"] > 0, value, np.nan)
    out["value"] = value
    out["verdict"] = np.select([out["n_usable"] == 0, value > 0.5, value < 0.5], ["unparsed", "A", "B"], "tie")
    for order in ("AB", "BA"):
        first = f[f["shown_order"] == order].groupby(keys, sort=False)["verdict"].first()
        out[f"v_{order}"] = first.reindex(out.index)
    # MT-Bench rule, as records.combine_orders: a verdict that flips with the order shown is a tie
    decided = out["v_AB"].isin(["A", "B", "tie"]) & out["v_BA"].isin(["A", "B", "tie"])
    flipped = decided & (out["v_AB"] != out["v_BA"]) & (out["verdict"] != "unparsed")
    out.loc[flipped, "verdict"] = "tie"
    out = out.drop(columns=["n_usable", "n_p", "sum_p", "sum_s"]).reset_index()
    return out


def _plurality(counts: np.ndarray) -> np.ndarray:
    """Row-wise unique argmax over CATS as a verdict string, None when the top is shared or empty."""
    top = counts.max(axis=1)
    n_top = (counts == top[:, None]).sum(axis=1)
    winner = np.array(CATS, dtype=object)[counts.argmax(axis=1)]
    return np.where((top > 0) & (n_top == 1), winner, None)


def _human_counts(items: pd.DataFrame) -> pd.DataFrame:
    h = items[(items["kind"] == "human") & items["verdict"].isin(CATS)]
    counts = h.groupby(["item", "verdict"]).size().unstack(fill_value=0)
    return counts.reindex(columns=list(CATS), fill_value=0)


def human_majority(items: pd.DataFrame) -> pd.DataFrame:
    """Per item (rows of per_item_verdicts): the unique plurality of the human annotators' verdicts
    (None where the top is shared) and how many human verdicts it came from."""
    counts = _human_counts(items)
    return pd.DataFrame({"item": counts.index, "verdict": _plurality(counts.to_numpy()),
                         "n_votes": counts.sum(axis=1).to_numpy()})


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


def _with_all(items: pd.DataFrame) -> pd.DataFrame:
    """Append a copy of each dataset's rows under subset '(all)' when it has several subsets; a
    dataset without subsets is shown as '(all)' too."""
    n_sub = items.groupby("dataset")["subset"].nunique()
    only_none = items["dataset"].map(n_sub).eq(1) & items["subset"].eq("(none)")
    if only_none.any():
        items = items.assign(subset=items["subset"].where(~only_none, ALL))
    multi = n_sub[n_sub > 1].index
    if len(multi) == 0:
        return items
    extra = items[items["dataset"].isin(multi)].assign(subset=ALL)
    return pd.concat([items, extra], ignore_index=True)


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


# -- humans -----------------------------------------------------------------------------------

def _mode_credit(counts: np.ndarray, verdict_idx: np.ndarray) -> np.ndarray:
    """Credit of a verdict against the mode of `counts` rows: 1/k if among the k modes, else 0."""
    top = counts.max(axis=1)
    is_mode = (counts == top[:, None]) & (top[:, None] > 0)
    k = is_mode.sum(axis=1)
    hit = is_mode[np.arange(len(counts)), verdict_idx]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(k > 0, hit / np.where(k > 0, k, 1), np.nan)


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
        humans_by_item = hum[hum["item"].isin(multi.index)].groupby("item")["verdict"].apply(list)
        for ann, d in g[g["item"].isin(multi.index)].groupby("annotator", sort=True):
            is_human = d["kind"].isin(kinds).all()
            credits = []
            for item, verdict in zip(d["item"], d["verdict"]):
                c = multi.loc[item].to_numpy(dtype=float)
                vi = col.get(verdict)
                if is_human:
                    if vi is None:
                        continue  # an unparsed human verdict is not part of the human panel
                    others = c.copy()
                    others[vi] -= 1
                    credits.append(_mode_credit(others[None], np.array([vi]))[0])
                else:
                    per = []
                    for left_out in humans_by_item[item]:
                        others = c.copy()
                        others[col[left_out]] -= 1
                        per.append(0.0 if vi is None else _mode_credit(others[None], np.array([vi]))[0])
                    credits.append(float(np.mean(per)))
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


__all__ = ["AGREEMENT_COLUMNS", "agreement_table", "attach_reference", "bias_table", "human_loo_agreement",
           "human_reliability", "pairwise_kappa", "per_item_verdicts", "reference_annotators"]
