"""alpaca_eval's annotator metrics (alpaca_eval 0.6.6, analyze.py `Analyzer`, metrics/helpers.py), on
per-label preference values: 1.0 = response_a preferred, 2.0 = response_b, 1.5 = tie (alpaca_eval's
`preference`), NaN = an unparsed label that counts as wrong (credit 0).

  random_mode        metrics/helpers.py `_random_mode`: the mode; several modes: one of the sorted
                     modes drawn with random_state 123 (so always the same position for k modes)
  credit             the "absolute" scoring rule (alpaca_eval's default): 1 - |prediction - target|,
                     so a tie against a decided target earns 0.5
  agreement_vs_mode  `agreement_of_annotations(annotations_1, gold, n_majority_vote_1=1)`: the j-th
                     label of the annotator on each item (j = 0, 1, ... in label order) against the
                     random mode of the panel's votes on it; the mean over items for each j, then the
                     mean over j. Returns the score and, per item and j, the credit (for the CI).
  self_agreement     the same with the annotator's own labels as the panel (`estimate_variance`:
                     n_majority_vote_1=1 against the mode of its other M-1 labels, M the most labels
                     of any unit; units with fewer than M-1 labels only serve as the j-th label).
                     Variance = 1 - self agreement.
  leaderboard        `estimate_correlations`' leaderboard: each policy's mean score over the votes it
                     is in (ties half, alpaca_eval's generalized win rate / 100); a policy that is in
                     every vote is the baseline the others are ranked against (alpaca_eval's layout)
                     and is left out.
  ranking_fidelity   Spearman and Pearson (scipy) of two leaderboards over their common policies;
                     NaN with fewer than 3 (two points always correlate +-1).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.stats import pearsonr, spearmanr

from .bootstrap import bootstrap_ci

PREF = {"A": 1.0, "B": 2.0, "tie": 1.5}
MIN_POLICIES = 3


VALUES = np.array([1.0, 1.5, 2.0])  # the preference values, sorted as pandas' Series.mode sorts them


def _tie_pick(k: int) -> int:
    # pandas' Series.sample(1, random_state=123) on k rows draws RandomState(123).choice(k, 1, replace=False)
    return int(np.random.RandomState(123).choice(k, size=1, replace=False)[0])


_PICK = {k: _tie_pick(k) for k in (2, 3)}


def counts_of(prefs) -> np.ndarray:
    """(n, 3) one-hot rows over VALUES (all zero for NaN)."""
    p = np.asarray(prefs, dtype=float)
    return (p[:, None] == VALUES[None, :]).astype(float)


def mode_of_counts(counts: np.ndarray) -> np.ndarray:
    """random_mode of each row of vote counts over VALUES (NaN for an empty row)."""
    c = np.asarray(counts, dtype=float)
    top = c.max(axis=1, initial=0)
    is_mode = (c == top[:, None]) & (top[:, None] > 0)
    k = is_mode.sum(axis=1)
    rank = np.cumsum(is_mode, axis=1) - 1  # position of each mode among the row's sorted modes
    want = np.array([_PICK.get(int(x), 0) for x in k])
    chosen = is_mode & (rank == want[:, None])
    return np.where(k > 0, (chosen * VALUES[None, :]).sum(axis=1), np.nan)


def random_mode(values) -> float:
    v = np.asarray(values, dtype=float)
    return float(mode_of_counts(counts_of(v).sum(axis=0, keepdims=True))[0])


def credit(pred, target) -> np.ndarray:
    """1 - |pred - target|; 0 for an unparsed (NaN) prediction, NaN where there is no target."""
    p, t = np.asarray(pred, dtype=float), np.asarray(target, dtype=float)
    return np.where(np.isnan(t), np.nan, np.where(np.isnan(p), 0.0, 1 - np.abs(p - t)))


def _item_counts(votes: pd.DataFrame, key: str = "item") -> pd.DataFrame:
    c = counts_of(votes["pref"].to_numpy())
    return pd.DataFrame(c, index=votes[key].to_numpy()).groupby(level=0, sort=False).sum()


def _indexed(votes: pd.DataFrame, key: str = "item") -> pd.DataFrame:
    """votes (columns item, pref, in label order) with `j`, the vote's position on its item."""
    return votes.assign(j=votes.groupby(key, sort=False).cumcount())


def agreement_vs_mode(votes: pd.DataFrame, panel: pd.DataFrame) -> tuple[float, pd.DataFrame]:
    """(score, credits): credits has one row per item the two share and one column per j (NaN where
    the annotator has no j-th label there)."""
    counts = _item_counts(panel)
    target = pd.Series(mode_of_counts(counts.to_numpy()), index=counts.index)
    v = _indexed(votes[votes["item"].isin(target.index)])
    if v.empty:
        return np.nan, pd.DataFrame()
    v = v.assign(c=credit(v["pref"], v["item"].map(target)))
    credits = v.pivot_table(index="item", columns="j", values="c", aggfunc="first")
    return float(credits.mean(axis=0).mean()), credits


def pooled_agreement(panel: pd.DataFrame) -> tuple[float, pd.DataFrame]:
    """alpaca_eval's humans row: each panel position j against the mode of the other positions, on the
    items with all m positions (`agreement_of_annotations` of the gold with itself)."""
    p = _indexed(panel)
    m = int(p["j"].max()) + 1 if len(p) else 0
    if m < 2:
        return np.nan, pd.DataFrame()
    wide = p.pivot_table(index="item", columns="j", values="pref", aggfunc="first").dropna()
    total = sum(counts_of(wide[j].to_numpy()) for j in range(m))
    credits = pd.DataFrame({j: credit(wide[j].to_numpy(), mode_of_counts(total - counts_of(wide[j].to_numpy())))
                            for j in range(m)}, index=wide.index)
    return float(credits.mean(axis=0).mean()), credits


def self_agreement(votes: pd.DataFrame) -> tuple[float, int]:
    """(self agreement, units with >= 2 labels): `votes` has columns unit, pref (label order)."""
    v = _indexed(votes, "unit")
    count = v.groupby("unit")["pref"].transform("size").to_numpy()
    n_rep = int(v.loc[count >= 2, "unit"].nunique())
    if n_rep == 0:
        return np.nan, 0
    big_m = int(count.max())
    # the others' counts: all labels of the unit (alpaca_eval keeps units with >= M-1 labels) minus the j-th
    unit_counts = _item_counts(v.assign(pref=np.where(count >= big_m - 1, v["pref"], np.nan)), "unit")
    scores = []
    for j in range(big_m):
        mine = v[(v["j"] == j).to_numpy() & (count >= big_m - 1) & (count >= 2)]
        if mine.empty:
            continue
        others = unit_counts.reindex(mine["unit"]).to_numpy() - counts_of(mine["pref"].to_numpy())
        c = credit(mine["pref"].to_numpy(), mode_of_counts(others))
        if np.isfinite(c).any():
            scores.append(float(np.nanmean(c)))
    return (float(np.mean(scores)) if scores else np.nan), n_rep


def leaderboard(votes: pd.DataFrame) -> pd.Series:
    """policy -> mean score over its votes (columns policy_a, policy_b, pref; unparsed rows dropped)."""
    v = votes[votes["pref"].notna() & votes["policy_a"].notna() & votes["policy_b"].notna()]
    if v.empty:
        return pd.Series(dtype=float)
    s = pd.concat([pd.DataFrame({"policy": v["policy_a"].to_numpy(), "score": 2 - v["pref"].to_numpy()}),
                   pd.DataFrame({"policy": v["policy_b"].to_numpy(), "score": v["pref"].to_numpy() - 1})])
    board = s.groupby("policy")["score"].mean()
    everywhere = [p for p in board.index if ((v["policy_a"] == p) | (v["policy_b"] == p)).all()]
    if len(everywhere) == 1 and len(board) > 2:
        board = board.drop(everywhere)
    return board


def ranking_fidelity(board_1: pd.Series, board_2: pd.Series) -> dict:
    common = board_1.index.intersection(board_2.index)
    out = {"spearman": np.nan, "pearson": np.nan, "n_policies": int(len(common))}
    a, b = board_1[common].to_numpy(float), board_2[common].to_numpy(float)
    if len(common) >= MIN_POLICIES and np.ptp(a) > 0 and np.ptp(b) > 0:
        out["spearman"] = float(spearmanr(b, a).statistic)
        out["pearson"] = float(pearsonr(b, a).statistic)
    return out


def mean_of_means_ci(credits: pd.DataFrame, n_boot: int, seed: int, ci: float) -> tuple[float, float]:
    """Percentile bootstrap over items of credits.mean(axis=0).mean() (NaN cells: no such label)."""
    c = credits.to_numpy(dtype=float)
    if c.size == 0:
        return np.nan, np.nan

    def stat(idx):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a resample without any j-th label: NaN
            return np.nanmean(np.nanmean(c[idx], axis=1), axis=1)

    return bootstrap_ci(stat, len(c), n_boot, seed, ci)
