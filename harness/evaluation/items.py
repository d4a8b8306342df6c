"""Per-item verdicts: the first step of every agreement statistic (agreement.py, humans.py, vote_pairs.py).

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
                MT-Bench does, 'tie' when v_AB and v_BA are both parsed and differ (order-inconsistent)
                and every label of the item knows its order shown (order_known).
  `unparsed` option: 'wrong' (default; unparsed stays a verdict of its own, so it counts as a
  disagreement / a wrong answer), 'tie' (read it as a tie: PandaLM's compute_metrics does this with
  gpt-3.5's "garbage"), 'drop' (remove those labels).

`human_majority`: per item, the unique plurality of the human verdicts (None where the top is shared).
`with_all`: a dataset's rows again under subset '(all)' when it has several subsets.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

VERDICT_SCORE = {"A": 1.0, "B": 0.0, "tie": 0.5}
DECISIVE = ("A", "B")
CATS = ("A", "B", "tie")
ALL = "(all)"
UNPARSED_MODES = ("wrong", "tie", "drop")
DEFAULT_MIN_LEN_DIFF = 30


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
    # MT-Bench rule, as records.combine_orders: a verdict that flips with the order shown is a tie. Only
    # where the order shown is known: two votes on one comparison listed both ways (MT-Bench human
    # judgments) are two votes, not one judge flipping with the order
    decided = out["v_AB"].isin(["A", "B", "tie"]) & out["v_BA"].isin(["A", "B", "tie"])
    flipped = decided & (out["v_AB"] != out["v_BA"]) & (out["verdict"] != "unparsed") & out["order_known"]
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


def with_all(items: pd.DataFrame) -> pd.DataFrame:
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


