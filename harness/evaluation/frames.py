"""DataFrames for the statistics, read from the store (through harness.store only).

`label_frame(store)`: one row per label actually asked (cache-hit copies left out) with columns
  label_id, pair_id, item, annotator, annotator_id, annotator_version, kind, verdict, p_a,
  shown_order, order_known, dataset, subset, policy_a, policy_b, len_a, len_b (characters).
`item`, `dataset`, `subset`, `policy_a/b` and `order_known` come from the label's meta when the
importer put them there (the same text can occur in two source records, e.g. two PandaLM records
whose models wrote identical answers: they share a pair_id but stay two items), else from the pair.
`annotator` is the annotator id, or 'id@version' when that id has labels under several versions.

`battles_frame(labels)`: one battle per (annotator, item) whose pair names both policies:
  annotator, item, dataset, subset, model_a, model_b, winner (the combined verdict, A/B/tie).
"""
from __future__ import annotations

import json

import pandas as pd

from ..store.filters import LabelFilter
from .agreement import per_item_verdicts

LABEL_COLUMNS = ["label_id", "pair_id", "item", "annotator", "annotator_id", "annotator_version", "kind", "verdict",
                 "p_a", "shown_order", "order_known", "dataset", "subset", "policy_a", "policy_b", "len_a", "len_b"]


def label_frame(store, dataset: str | None = None, annotators=None, kinds=None) -> pd.DataFrame:
    """All labels of the store as a frame (module docstring); optional filters on the result."""
    # a cache-hit row (cached=1) repeats an answer already in the store for a later run/step: counting
    # it would weight re-asked pairs twice in every statistic
    df = store.label_frame_rows(LabelFilter(
        cached=False, annotators=sorted({a.split("@")[0] for a in annotators}) if annotators else None,
        kinds=list(kinds) if kinds else None))
    if df.empty:
        return pd.DataFrame(columns=LABEL_COLUMNS)
    meta = [json.loads(m) if m else {} for m in df.pop("meta_json")]
    df["item"] = [m.get("item") or pid for m, pid in zip(meta, df["pair_id"])]
    for col in ("dataset", "subset", "policy_a", "policy_b"):
        pair_col = df.pop(f"pair_{col}")
        df[col] = [m[col] if col in m else v for m, v in zip(meta, pair_col)]
    df["order_known"] = [bool(m.get("order_known", True)) for m in meta]
    versions = df.groupby("annotator_id")["annotator_version"].nunique()
    multi = set(versions[versions > 1].index)
    df["annotator"] = [f"{i}@{v}" if i in multi else i for i, v in zip(df["annotator_id"], df["annotator_version"])]
    if dataset is not None:
        df = df[df["dataset"] == dataset]
    if annotators:
        df = df[df["annotator"].isin(set(annotators)) | df["annotator_id"].isin(set(annotators))]
    return df[LABEL_COLUMNS].reset_index(drop=True)


def battles_frame(labels: pd.DataFrame, unparsed: str = "drop") -> pd.DataFrame:
    """One battle per (annotator, item) with both policies named; unparsed verdicts give no battle."""
    cols = ["annotator", "item", "dataset", "subset", "model_a", "model_b", "winner"]
    if labels.empty:
        return pd.DataFrame(columns=cols)
    lab = labels[labels["policy_a"].notna() & labels["policy_b"].notna()]
    if lab.empty:
        return pd.DataFrame(columns=cols)
    items = per_item_verdicts(lab, unparsed, keep=("policy_a", "policy_b"))
    items = items[items["verdict"].isin(("A", "B", "tie"))]
    out = items.rename(columns={"policy_a": "model_a", "policy_b": "model_b", "verdict": "winner"})
    return out[cols].reset_index(drop=True)


def to_records(df: pd.DataFrame) -> list[dict]:
    """Rows as plain dicts for JSON / the results table: NaN -> None, numpy scalars -> Python."""
    out = []
    for row in df.to_dict(orient="records"):
        clean = {}
        for k, v in row.items():
            if hasattr(v, "item") and not isinstance(v, (str, bytes)):
                v = v.item()
            if isinstance(v, float) and v != v:
                v = None
            clean[k] = v
        out.append(clean)
    return out


def matrix_to_dict(m: pd.DataFrame) -> dict:
    """{row: {col: value}} with NaN -> None (win-rate / count matrices)."""
    return {str(r): {str(c): (None if pd.isna(v) else float(v)) for c, v in m.loc[r].items()} for r in m.index}
