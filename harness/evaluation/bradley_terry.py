"""Bradley-Terry ratings from pairwise battles (Chatbot Arena style), bootstrap CIs, win-rate matrix.

Definitions:
- A battle is (model_a, model_b, winner) with winner 'A', 'B' or 'tie' (also accepted:
  'model_a', 'model_b', 'tie (bothbad)'). Unparsed/missing winners and self-battles are dropped.
- Model: P(a beats b) = 1 / (1 + 10 ** ((R_b - R_a) / scale)), i.e. logistic in beta = R ln10 / scale.
  A tie counts as half a win for each side (Arena duplicates tie rows into one win each way; a
  fractional target of 0.5 is the same likelihood). Fitted by Newton's method on the summed
  log-loss plus l2/2 |beta|^2 (Arena: sklearn LogisticRegression, C=1e6; the penalty only matters
  when a model wins or loses every battle, and fixes the free offset at mean(beta) = 0).
- Ratings: R = init + (scale / ln 10) * beta (Elo scale: 400 points = 10:1 odds), so the mean
  rating is `init` (1000), unless `anchor=(model, rating)` shifts all ratings so that model has it.
- CI: percentile bootstrap over battles (resample battles with replacement, refit). A resample in
  which a model has no battle says nothing about it: that model gets no rating from it (it is not
  given the starting rating; `n_boot_missing` counts those resamples) and the ratings of that resample
  are centred on the models it has. With `anchor`, resamples without the anchor model are left out.
- Win-rate matrix: observed score of the row model against the column model over all their
  battles in either position (ties half); NaN where they never met. `predicted_win_rates` gives
  the BT probabilities instead.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .bootstrap import DEFAULT_N_BOOT, percentile_ci, resample_indices

SCALE = 400.0
INIT_RATING = 1000.0
_WINNER = {"A": 1.0, "model_a": 1.0, "B": 0.0, "model_b": 0.0, "tie": 0.5, "tie (bothbad)": 0.5,
           "tie (inconsistent)": 0.5}


def clean_battles(battles: pd.DataFrame) -> pd.DataFrame:
    """Columns model_a, model_b, winner -> the same plus y (score of model_a); bad rows dropped."""
    missing = {"model_a", "model_b", "winner"} - set(battles.columns)
    if missing:
        raise ValueError(f"battles need columns model_a, model_b, winner; missing {sorted(missing)}")
    df = battles[["model_a", "model_b", "winner"]].copy()
    df["y"] = df["winner"].map(_WINNER)
    df = df[df["y"].notna() & df["model_a"].notna() & df["model_b"].notna() & (df["model_a"] != df["model_b"])]
    return df.reset_index(drop=True)


def _fit(ia: np.ndarray, ib: np.ndarray, y: np.ndarray, w: np.ndarray, k: int, l2: float,
         iters: int = 200) -> np.ndarray:
    beta = np.zeros(k)
    for _ in range(iters):
        z = beta[ia] - beta[ib]
        p = 1 / (1 + np.exp(-z))
        r = w * (p - y)
        grad = np.bincount(ia, r, k) - np.bincount(ib, r, k) + l2 * beta
        h = w * p * (1 - p)
        H = np.zeros((k, k))
        np.add.at(H, (ia, ia), h)
        np.add.at(H, (ib, ib), h)
        np.add.at(H, (ia, ib), -h)
        np.add.at(H, (ib, ia), -h)
        H[np.diag_indices(k)] += l2
        step = np.linalg.solve(H, grad)
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    return beta - beta.mean()


def bradley_terry(battles: pd.DataFrame, n_boot: int = DEFAULT_N_BOOT, seed: int = 0, ci: float = 0.95,
                  scale: float = SCALE, init: float = INIT_RATING, anchor: tuple[str, float] | None = None,
                  l2: float = 1e-6) -> pd.DataFrame:
    """Ratings table, one row per model, sorted best first.

    Columns: rank, model, rating, ci_low, ci_high, n_battles, wins, ties, losses, score (its mean
    score over its battles, ties half), n_boot_missing (bootstrap resamples without the model).
    """
    df = clean_battles(battles)
    models = sorted(set(df["model_a"]) | set(df["model_b"]))
    cols = ["rank", "model", "rating", "ci_low", "ci_high", "n_battles", "wins", "ties", "losses", "score",
            "n_boot_missing"]
    if not models:
        return pd.DataFrame(columns=cols)
    index = {m: i for i, m in enumerate(models)}
    k = len(models)
    ia = df["model_a"].map(index).to_numpy()
    ib = df["model_b"].map(index).to_numpy()
    y = df["y"].to_numpy(float)
    # Unique (a, b, y) rows with counts: a bootstrap resample is then just new counts.
    code = (ia * k + ib) * 3 + np.round(y * 2).astype(int)
    uniq, inverse = np.unique(code, return_inverse=True)
    u_y = (uniq % 3) / 2.0
    u_ab = uniq // 3
    u_a, u_b = u_ab // k, u_ab % k
    to_rating = scale / math.log(10)

    def ratings(weights):
        return init + to_rating * _fit(u_a, u_b, u_y, weights, k, l2)

    def boot_ratings(weights):
        # a model without battles in the resample: NaN, not its penalty-only beta of 0 (the starting rating)
        present = (np.bincount(u_a, weights, k) + np.bincount(u_b, weights, k)) > 0
        beta = _fit(u_a, u_b, u_y, weights, k, l2) * 1.0
        beta = np.where(present, beta - beta[present].mean(), np.nan)
        return init + to_rating * beta

    point = ratings(np.bincount(inverse, minlength=len(uniq)).astype(float))
    lo = np.full(k, np.nan)
    hi = np.full(k, np.nan)
    missing = np.zeros(k, dtype=int)
    if n_boot > 0:
        idx = resample_indices(len(df), n_boot, seed)
        boot = np.array([boot_ratings(np.bincount(inverse[row], minlength=len(uniq)).astype(float)) for row in idx])
        missing = np.isnan(boot).sum(axis=0)
        if anchor is not None:
            boot += anchor[1] - boot[:, [models.index(anchor[0])]]  # NaN rows where the anchor is absent
        for j in range(k):
            lo[j], hi[j] = percentile_ci(boot[:, j], ci)
    if anchor is not None:
        if anchor[0] not in index:
            raise ValueError(f"anchor model {anchor[0]!r} has no battles")
        point = point + anchor[1] - point[index[anchor[0]]]
    rows = []
    for m, j in index.items():
        as_a = df[df["model_a"] == m]["y"]
        as_b = 1 - df[df["model_b"] == m]["y"]
        allv = pd.concat([as_a, as_b])
        rows.append({"model": m, "rating": float(point[j]), "ci_low": float(lo[j]), "ci_high": float(hi[j]),
                     "n_battles": int(len(allv)), "wins": int((allv == 1).sum()), "ties": int((allv == 0.5).sum()),
                     "losses": int((allv == 0).sum()), "score": float(allv.mean()),
                     "n_boot_missing": int(missing[j])})
    out = pd.DataFrame(rows).sort_values("rating", ascending=False).reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out[cols]


def win_rate_matrix(battles: pd.DataFrame) -> pd.DataFrame:
    """Observed score of the row model against the column model (ties half); NaN where none."""
    df = clean_battles(battles)
    both = pd.concat([
        pd.DataFrame({"row": df["model_a"], "col": df["model_b"], "y": df["y"]}),
        pd.DataFrame({"row": df["model_b"], "col": df["model_a"], "y": 1 - df["y"]}),
    ])
    models = sorted(set(both["row"]))
    if not models:
        return pd.DataFrame()
    m = both.groupby(["row", "col"])["y"].mean().unstack()
    return m.reindex(index=models, columns=models)


def battle_counts(battles: pd.DataFrame) -> pd.DataFrame:
    """Number of battles between each two models (symmetric)."""
    df = clean_battles(battles)
    both = pd.concat([df[["model_a", "model_b"]].set_axis(["row", "col"], axis=1),
                      df[["model_b", "model_a"]].set_axis(["row", "col"], axis=1)])
    models = sorted(set(both["row"]))
    if not models:
        return pd.DataFrame()
    return both.groupby(["row", "col"]).size().unstack(fill_value=0).reindex(index=models, columns=models, fill_value=0)


def predicted_win_rates(ratings: pd.DataFrame, scale: float = SCALE) -> pd.DataFrame:
    """BT probability that the row model beats the column model, from a `bradley_terry` table."""
    r = ratings.set_index("model")["rating"]
    diff = r.to_numpy()[None, :] - r.to_numpy()[:, None]
    return pd.DataFrame(1 / (1 + 10 ** (diff / scale)), index=r.index, columns=r.index)
