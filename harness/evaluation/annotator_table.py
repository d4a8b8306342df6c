"""alpaca_eval's annotator table (`analyze_evaluators` -> analyze.py `get_metrics_evaluator`), per
dataset and subset with human labels, one row per annotator, plus alpaca_eval's "humans" row and
baseline rows. Proportions are 0-1 (alpaca_eval prints agreement and variance x 100).

The labels are keyed by comparison first (comparisons.canonical: a record listing the two policies
the other way round is the same item), so every column counts one comparison once.

  human_agreement    alpaca_eval's "Human agreement" (alpaca_metrics.agreement_vs_mode): each label
                     against the random mode of the panel: the first m human votes of the items with
                     >= m of them, m (n_humans) the most common number of human votes per item (alpaca_eval
                     fixes m = 4); the absolute scoring rule (a tie against a decided mode earns 0.5).
                     A human annotator is scored against the other panel votes of the item; the row
                     'humans' is the panel against itself (each position against the others' mode).
                     CI: percentile bootstrap over items.
  loo_agreement      humans.human_loo_agreement (expected tie-break credit, zero-one), with its CI;
                     for 'humans' the ceiling (humans.human_reliability)
  spearman, pearson  ranking fidelity: the leaderboard of the policies (alpaca_metrics.leaderboard)
                     from the annotator's labels vs the one from all human votes, on the items both
                     judged; n_policies (NaN below 3); only where the pairs name both policies
  variance           1 - self agreement over units (item, shown order) the annotator labelled more
                     than once (alpaca_metrics.self_agreement; n_repeated units); 'humans': 1 -
                     human_agreement (alpaca_eval's estimate_variance of the panel); baselines: 0
                     (a rule asked again answers the same; alpaca_eval's 'longest' row)
  p_longer, n_longer P(prefers longer) when the lengths differ by > min_len_diff characters
                     (agreement.bias_table, on the combined verdict per item)
  p_lists, n_lists   P(prefers the response with a list) over items where exactly one response has
                     one (alpaca_eval's contains_list) and the verdict picks a side
  p_first, n_first   P(prefers the response shown first) (agreement.bias_table)
  seconds_per_1000, cost_per_1000, tokens_per_1000
                     1000 x the mean latency_s, cost, tokens_in + tokens_out of the annotator's labels
                     that record them (alpaca_eval's time and price per 1000 examples); n_labels
Baselines (kind 'baseline', one label per item): 'always longer' (response_a if it is strictly longer,
else response_b: alpaca_eval's `_get_longest_predictor`), 'always shorter' (the mirror: response_a if
strictly shorter, else response_b), 'always first' (response_a, shown first). alpaca_eval has no
random baseline row.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import alpaca_metrics as am
from . import bias
from .agreement import bias_table
from .bootstrap import DEFAULT_N_BOOT
from .comparisons import canonical
from .humans import human_loo_agreement, human_reliability
from .items import DEFAULT_MIN_LEN_DIFF, _prepare, per_item_verdicts, with_all

HUMANS = "humans"
BASELINES = {"always longer": lambda la, lb: np.where(la > lb, "A", "B"),
             "always shorter": lambda la, lb: np.where(la < lb, "A", "B"),
             "always first": lambda la, lb: np.full(len(la), "A", dtype=object)}
ANNOTATOR_TABLE_COLUMNS = [
    "dataset", "subset", "annotator", "kind", "n_items", "n_humans", "human_agreement", "human_agreement_ci_low",
    "human_agreement_ci_high", "loo_agreement", "loo_ci_low", "loo_ci_high", "spearman", "pearson", "n_policies",
    "variance", "n_repeated", "p_longer", "n_longer", "p_lists", "n_lists", "p_first", "n_first",
    "seconds_per_1000", "cost_per_1000", "tokens_per_1000", "n_labels"]


def with_baselines(f: pd.DataFrame) -> pd.DataFrame:
    """`f` plus one label per item for each baseline rule (kind 'baseline'), on the items humans judged."""
    items = f[f["kind"] == "human"].drop_duplicates("item")
    if items.empty:
        return f
    start = (pd.to_numeric(f["label_id"], errors="coerce").max() if "label_id" in f else 0) or 0
    parts = [f]
    la, lb = items["len_a"].to_numpy(float), items["len_b"].to_numpy(float)
    for k, (name, rule) in enumerate(BASELINES.items()):
        parts.append(items.assign(annotator=name, kind="baseline", verdict=rule(la, lb), shown_order="AB",
                                  order_known=True, p_a=np.nan, latency_s=0.0, cost=0.0, tokens_in=0, tokens_out=0,
                                  label_id=start + 1 + k * len(items) + np.arange(len(items))))
    return pd.concat(parts, ignore_index=True)


def select_panel(votes: pd.DataFrame, m: int | None = None) -> tuple[pd.DataFrame, int]:
    """alpaca_eval's `_select_n_annotations`: the first m votes of each item with >= m (m: the most
    common number of votes per item, the larger on a tie)."""
    counts = votes.groupby("item").size()
    if counts.empty:
        return votes, 0
    if m is None:
        freq = counts.value_counts()
        m = int(max(freq[freq == freq.max()].index))
    v = votes.assign(_j=votes.groupby("item", sort=False).cumcount())
    keep = v["item"].map(counts) >= m
    return v[keep & (v["_j"] < m)].drop(columns="_j"), m


def _prefs(d: pd.DataFrame) -> pd.DataFrame:
    return d.assign(pref=d["verdict"].map(am.PREF))  # 'unparsed' -> NaN: credit 0 (the 'wrong' option)


def _per_1000(d: pd.DataFrame, col: str) -> float:
    x = pd.to_numeric(d[col], errors="coerce") if col in d else pd.Series(dtype=float)
    return float(x.mean() * 1000) if x.notna().any() else np.nan


def _list_share(items: pd.DataFrame) -> dict:
    """P(prefers the response with a list), from per_item_verdicts rows with list_a / list_b."""
    if "list_a" not in items or items.empty:
        return {"p_lists": np.nan, "n_lists": 0}
    la, lb = items["list_a"].fillna(False).astype(bool).to_numpy(), items["list_b"].fillna(False).astype(bool).to_numpy()
    side = np.where(la & ~lb, "A", np.where(lb & ~la, "B", None))
    s = bias.share(bias.prefers_longer(items["verdict"].to_numpy(dtype=object), side))
    return {"p_lists": np.nan if s["value"] is None else s["value"], "n_lists": s["n"]}


def _longer_share(items: pd.DataFrame, min_len_diff: float) -> dict:
    side = bias.longer_side(items["len_a"].to_numpy(dtype=float), items["len_b"].to_numpy(dtype=float), min_len_diff)
    s = bias.share(bias.prefers_longer(items["verdict"].to_numpy(dtype=object), side))
    return {"p_longer": np.nan if s["value"] is None else s["value"], "n_longer": s["n"]}


def _first_share(items: pd.DataFrame) -> dict:
    s = bias.share(bias.first_shown_by_order(items["v_AB"].to_numpy(dtype=object), items["v_BA"].to_numpy(dtype=object),
                                             items["order_known"].to_numpy(dtype=bool)))
    return {"p_first": np.nan if s["value"] is None else s["value"], "n_first": s["n"]}


def _group_rows(g: pd.DataFrame, ds, sub, min_len_diff, n_boot, seed, ci) -> list[dict]:
    votes = _prefs(g[(g["kind"] == "human") & (g["verdict"] != "unparsed")])
    panel, m = select_panel(votes)
    if panel.empty:
        return []
    items = per_item_verdicts(g, keep=("list_a", "list_b") if "list_a" in g else ())
    rows = []
    for ann, d in g.groupby("annotator", sort=True):
        kind = d["kind"].iloc[0]
        mine = _prefs(d)
        target = panel[panel["annotator"] != ann] if kind == "human" else panel
        score, credits = am.agreement_vs_mode(mine, target)
        lo, hi = am.mean_of_means_ci(credits, n_boot, seed, ci)
        shared = mine[mine["item"].isin(set(votes["item"]))]
        fid = am.ranking_fidelity(am.leaderboard(shared), am.leaderboard(votes[votes["item"].isin(set(shared["item"]))]))
        if kind == "baseline":
            variance, n_rep = 0.0, 0
        else:
            self_score, n_rep = am.self_agreement(mine.assign(unit=mine["item"] + "\x00" + mine["shown_order"]))
            variance = 1 - self_score
        rows.append({"dataset": ds, "subset": sub, "annotator": ann, "kind": kind, "n_items": len(credits),
                     "n_humans": m, "human_agreement": score, "human_agreement_ci_low": lo,
                     "human_agreement_ci_high": hi, **fid, "variance": variance, "n_repeated": n_rep,
                     **_list_share(items[items["annotator"] == ann]),
                     "seconds_per_1000": _per_1000(d, "latency_s"), "cost_per_1000": _per_1000(d, "cost"),
                     "tokens_per_1000": _tokens(d), "n_labels": len(d)})
    pooled, credits = am.pooled_agreement(panel)
    if np.isfinite(pooled):
        lo, hi = am.mean_of_means_ci(credits, n_boot, seed, ci)
        first = items[items["kind"] == "human"].drop_duplicates("item")  # alpaca_eval: the first vote per item
        rows.append({"dataset": ds, "subset": sub, "annotator": HUMANS, "kind": "human", "n_items": len(credits),
                     "n_humans": m, "human_agreement": pooled, "human_agreement_ci_low": lo,
                     "human_agreement_ci_high": hi, "spearman": np.nan, "pearson": np.nan,
                     "n_policies": int(len(am.leaderboard(votes))), "variance": 1 - pooled,
                     "n_repeated": len(credits), **_longer_share(first, min_len_diff), **_list_share(first), **_first_share(first),
                     "n_labels": len(votes)})
    return rows


def _tokens(d: pd.DataFrame) -> float:
    if "tokens_in" not in d:
        return np.nan
    t = pd.to_numeric(d["tokens_in"], errors="coerce").fillna(0) + pd.to_numeric(d["tokens_out"], errors="coerce"
                                                                                  ).fillna(0)
    has = pd.to_numeric(d["tokens_in"], errors="coerce").notna() | pd.to_numeric(d["tokens_out"], errors="coerce").notna()
    return float(t[has].mean() * 1000) if has.any() else np.nan


def annotator_table(frame: pd.DataFrame, unparsed: str = "wrong", min_len_diff: float = DEFAULT_MIN_LEN_DIFF,
                    n_boot: int = DEFAULT_N_BOOT, seed: int = 0, ci: float = 0.95,
                    baselines: bool = True) -> pd.DataFrame:
    """The table (module docstring) for every dataset/subset with human labels; columns ANNOTATOR_TABLE_COLUMNS."""
    f = canonical(_prepare(frame, unparsed))
    if f.empty or not (f["kind"] == "human").any():
        return pd.DataFrame(columns=ANNOTATOR_TABLE_COLUMNS)
    if baselines:
        f = with_baselines(f)
    rows = []
    for (ds, sub), g in with_all(f).groupby(["dataset", "subset"], sort=True):
        rows += _group_rows(g, ds, sub, min_len_diff, n_boot, seed, ci)
    out = pd.DataFrame(rows, columns=ANNOTATOR_TABLE_COLUMNS)
    if out.empty:
        return out
    keys = ["dataset", "subset", "annotator"]
    b = bias_table(f, unparsed, min_len_diff, n_boot=0).set_index(keys)
    loo = human_loo_agreement(f, unparsed, n_boot, seed).set_index(keys)
    ceil = human_reliability(f, unparsed, n_boot, seed).assign(annotator=HUMANS).set_index(keys)
    idx = pd.MultiIndex.from_frame(out[keys])
    h = (out["annotator"] == HUMANS).to_numpy()
    for col, src, name in (("p_longer", b, "p_longer"), ("n_longer", b, "n_longer"), ("p_first", b, "p_first"),
                           ("n_first", b, "n_first"), ("loo_agreement", loo, "loo_agreement"),
                           ("loo_ci_low", loo, "ci_low"), ("loo_ci_high", loo, "ci_high")):
        if len(src):  # the 'humans' row keeps its own (first vote per item, as alpaca_eval)
            out.loc[~h, col] = src[name].reindex(idx[~h]).to_numpy()
    for col, name in (("loo_agreement", "ceiling"), ("loo_ci_low", "ceiling_ci_low"), ("loo_ci_high", "ceiling_ci_high")):
        if len(ceil):
            out.loc[h, col] = ceil[name].reindex(idx[h]).to_numpy()
    return out.sort_values(["dataset", "subset", "human_agreement"], ascending=[True, True, False],
                           ignore_index=True)
