"""One comparison whatever order a record lists it in, and the per-pair features the annotator table needs.

`canonical(frame)`: a label frame (items.py) whose `item` becomes the comparison key of FastChat's
compute_agreement.py: (dataset, subset, question, the two policies sorted). A label whose pair lists
the policies the other way round from the comparison's first label (label_id order) is turned around
(verdict A<->B, shown_order AB<->BA, p_a -> 1-p_a, len_a<->len_b, list_a<->list_b, policy_a<->policy_b),
as FastChat's `revert` does with a swapped vote. The first label's order (not the sorted one) is kept
so that data without swapped records keeps its own orientation: alpaca_eval's tie-break between
modes depends on it (alpaca_metrics.random_mode). `question` is the column `prompt_key` where present
(the pair's prompt, `add_features`), else the item. Rows without both policies keep their item:
without policies there is no order to undo. The original item stays in column `source_item`; `flipped` says which labels were turned.

`add_features(labels, store, dataset)`: joins to a `frames.label_frame` (by label_id) what it lacks:
  latency_s, tokens_in, tokens_out, cost   the label's own (store columns; None for imported labels)
  prompt_key                               sha1 of the pair's prompt (12 hex digits)
  list_a, list_b                           whether response_a / response_b contains a list, by
                                           alpaca_eval's `utils.contains_list` (the three patterns below)
"""
from __future__ import annotations

import hashlib
import re

import numpy as np
import pandas as pd

from ..store.filters import LabelFilter

# alpaca_eval/utils.py contains_list: bullets, numbered items, lettered items at a line start
_LIST_PATTERNS = [re.compile(p) for p in (r"(?m)^\s*[\*\•\-]\s*[^\w]*\w+", r"(?m)^\s*\d+[\.\)]\s*[^\w]*\w+",
                                          r"(?m)^\s*[a-zA-Z][\.\)]\s+[^\w]*\w+")]
FEATURE_COLUMNS = ["latency_s", "tokens_in", "tokens_out", "cost", "prompt_key", "list_a", "list_b"]
_FLIP = {"A": "B", "B": "A"}
_FLIP_ORDER = {"AB": "BA", "BA": "AB"}


def contains_list(text: str) -> bool:
    """alpaca_eval's definition of a response with a list (any of its three patterns matches)."""
    return any(p.search(text or "") for p in _LIST_PATTERNS)


def prompt_key(prompt: str) -> str:
    return hashlib.sha1((prompt or "").encode("utf-8")).hexdigest()[:12]


def add_features(labels: pd.DataFrame, store, dataset: str | None = None) -> pd.DataFrame:
    """`labels` with FEATURE_COLUMNS joined on label_id (module docstring); read through the store."""
    if labels.empty:
        return labels.assign(**{c: pd.Series(dtype=object) for c in FEATURE_COLUMNS})
    rows = store.labels_df(LabelFilter(cached=False, dataset=dataset))
    rows = rows[rows["label_id"].isin(set(labels["label_id"]))]
    pairs = rows.drop_duplicates("pair_id")
    per_pair = pd.DataFrame({"pair_id": pairs["pair_id"], "prompt_key": [prompt_key(p) for p in pairs["prompt"]],
                             "list_a": [contains_list(t) for t in pairs["response_a"]],
                             "list_b": [contains_list(t) for t in pairs["response_b"]]})
    per_label = rows[["label_id", "pair_id", "latency_s", "tokens_in", "tokens_out", "cost"]].merge(per_pair,
                                                                                                   on="pair_id")
    out = labels.drop(columns=[c for c in FEATURE_COLUMNS if c in labels.columns])
    out = out.merge(per_label.drop(columns="pair_id"), on="label_id", how="left")
    for c in ("latency_s", "tokens_in", "tokens_out", "cost"):
        out[c] = pd.to_numeric(out[c], errors="coerce")
    return out


def _has(frame: pd.DataFrame, col: str) -> pd.Series:
    return frame[col].notna() if col in frame.columns else pd.Series(False, index=frame.index)


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame keyed by comparison, each label turned to the order of its comparison's first label (docstring)."""
    f = frame.copy()
    f["source_item"] = f["item"]
    f["flipped"] = False
    if f.empty:
        return f
    named = (_has(f, "policy_a") & _has(f, "policy_b")).to_numpy()
    if not named.any():
        return f
    pa, pb = f["policy_a"].astype(str).to_numpy(), f["policy_b"].astype(str).to_numpy()
    question = f["prompt_key"].where(_has(f, "prompt_key"), f["item"]) if "prompt_key" in f else f["item"]
    ds = f["dataset"].fillna("(none)") if "dataset" in f else pd.Series("(none)", index=f.index)
    sub = f["subset"].fillna("(none)") if "subset" in f else pd.Series("(none)", index=f.index)
    lo, hi = pd.Series(np.where(pa <= pb, pa, pb), index=f.index), pd.Series(np.where(pa <= pb, pb, pa), index=f.index)
    key = (ds.astype(str) + "|" + sub.astype(str) + "|" + question.astype(str) + "|" + lo + "|" + hi).to_numpy()
    key = np.where(named, key, f["item"].astype(str).to_numpy())
    order = np.argsort(pd.to_numeric(f["label_id"], errors="coerce").to_numpy(), kind="stable") \
        if "label_id" in f else np.arange(len(f))
    first_a = pd.Series(pa[order], index=key[order]).groupby(level=0, sort=False).first()
    flip = named & (pa != first_a.reindex(key).to_numpy())
    f["item"] = key
    f["flipped"] = flip
    f.loc[flip, "verdict"] = f.loc[flip, "verdict"].map(lambda v: _FLIP.get(v, v))
    f.loc[flip, "shown_order"] = f.loc[flip, "shown_order"].map(lambda v: _FLIP_ORDER.get(v, v))
    if "p_a" in f:
        f.loc[flip, "p_a"] = 1 - pd.to_numeric(f.loc[flip, "p_a"], errors="coerce")
    for a, b in (("len_a", "len_b"), ("list_a", "list_b"), ("policy_a", "policy_b")):
        if a in f and b in f:
            f.loc[flip, [a, b]] = f.loc[flip, [b, a]].to_numpy()
    return f
