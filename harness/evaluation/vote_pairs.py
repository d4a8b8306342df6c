"""MT-Bench's agreement per vote pair (Zheng et al. 2023, Table 5), as FastChat's
fastchat/llm_judge/compute_agreement.py defines it (`get_mt_bench_votes_data`, `get_mt_bench_agreement`).

Votes are keyed by comparison: (question, the two models sorted, turn); a vote on the swapped order is
turned around (`revert`). Here the key is comparisons.canonical's (dataset, subset, prompt, sorted
policies); the subset plays the turn (MT-Bench's subsets are turn1/turn2), and each subset is
reported on its own, plus '(all)' pooling a dataset's subsets.

  annotator vs humans  (FastChat: judge1 gpt4-pair, judge2 human) for every annotator that is not in
                       the human panel: its one verdict per comparison (FastChat asserts GPT-4 has
                       exactly one; here its labels of the comparison are combined as items.py does:
                       both orders, mean score, a flip across orders is a tie) against EVERY human
                       vote on that comparison: each (verdict, human vote) is one vote pair.
  human vs human       every two human votes on one comparison (all i < j of its vote list, so a
                       judge who voted twice on it is paired with itself too, as in FastChat).
  S1 (with ties)       all vote pairs; agreement = share of pairs whose two votes are equal (tie ==
                       tie: FastChat's `equalvote`, any 'tie...' winner is a tie).
  S2 (without ties)    FastChat's ban=["tie"]: pairs where either vote is a tie are left out (an
                       annotator's tie verdict removes all pairs of that comparison).
  humans               the panel: labels of kind 'human'; `experts_only` keeps those whose annotator
                       name (after the importer's 'source:' prefix) starts with 'expert', as FastChat's
                       `get_judge_name` maps 'expert_*' judges to "human" and 'author_*' ones apart.
  unparsed             items.py's option: 'wrong' keeps 'unparsed' as a vote of its own (equal only
                       to another unparsed), 'tie' reads it as a tie, 'drop' removes it.
  n                    vote pairs counted (a row only where n > 0); n_comparisons: comparisons
                       contributing at least one;
  ci_low / ci_high     95% percentile bootstrap over comparisons (the vote pairs of one comparison
                       share votes, so comparisons, not pairs, are resampled).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .bootstrap import DEFAULT_N_BOOT, bootstrap_ratio_ci
from .comparisons import canonical
from .items import _prepare, per_item_verdicts, with_all

SETUPS = {"S1 (with ties)": False, "S2 (without ties)": True}
VOTE_PAIR_COLUMNS = ["dataset", "subset", "judge_1", "judge_2", "kind", "humans", "setup", "n", "agree", "agreement",
                     "ci_low", "ci_high", "n_comparisons"]
HUMAN_VS_HUMAN = "human vs human"


def local_name(annotator: str) -> str:
    """'mtbench-human:expert_3@v' -> 'expert_3' (the judge's own name in the source)."""
    return str(annotator).split("@")[0].rsplit(":", 1)[-1]


def human_votes(frame: pd.DataFrame, experts_only: bool = False) -> pd.DataFrame:
    """The panel's votes, one row per label (FastChat appends every vote)."""
    h = frame[frame["kind"] == "human"]
    if experts_only:
        h = h[h["annotator"].map(lambda a: local_name(a).startswith("expert"))]
    return h


def _ratio_row(per_key: pd.DataFrame, n_boot: int, seed: int, ci: float) -> dict:
    per_key = per_key[per_key["total"] > 0]
    n, agree = int(per_key["total"].sum()), int(per_key["agree"].sum())
    lo, hi = bootstrap_ratio_ci(per_key["agree"].to_numpy(float), per_key["total"].to_numpy(float), n_boot, seed, ci)
    return {"n": n, "agree": agree, "agreement": agree / n if n else np.nan, "ci_low": lo if n else np.nan,
            "ci_high": hi if n else np.nan, "n_comparisons": int(len(per_key))}


def annotator_vs_humans(verdicts: pd.Series, votes: pd.Series, ban_ties: bool) -> pd.DataFrame:
    """Per comparison: agreeing and total vote pairs of one verdict (index: item) against the human
    votes (index: item, one entry per vote)."""
    v = verdicts.reindex(votes.index)
    ok = v.notna().to_numpy()
    if ban_ties:
        ok = ok & (v != "tie").to_numpy() & (votes != "tie").to_numpy()
    d = pd.DataFrame({"item": votes.index[ok], "agree": (v[ok].to_numpy() == votes[ok].to_numpy()).astype(int)})
    return d.groupby("item").agg(agree=("agree", "sum"), total=("agree", "size"))


def human_vs_human(votes: pd.Series, ban_ties: bool) -> pd.DataFrame:
    """Per comparison: agreeing and total pairs among its human votes (index: item): C(n, 2) pairs,
    sum over vote values of C(count, 2) agreeing."""
    if ban_ties:
        votes = votes[votes != "tie"]
    counts = votes.groupby(level=0).value_counts().unstack(fill_value=0)
    n = counts.sum(axis=1)
    return pd.DataFrame({"agree": (counts * (counts - 1) // 2).sum(axis=1), "total": n * (n - 1) // 2})


def vote_pair_agreement(frame: pd.DataFrame, unparsed: str = "wrong", experts_only: bool = False,
                        n_boot: int = DEFAULT_N_BOOT, seed: int = 0, ci: float = 0.95) -> pd.DataFrame:
    """S1 and S2 vote-pair agreement of every non-panel annotator with the humans, and of the humans
    with each other, per dataset and subset (module docstring). Columns: VOTE_PAIR_COLUMNS."""
    f = canonical(_prepare(frame, unparsed))
    panel = human_votes(f, experts_only)
    panel_name = "expert_*" if experts_only else "human"
    others = f[f["kind"] != "human"]
    verdicts = per_item_verdicts(others, unparsed) if not others.empty else None
    rows = []
    h_all = with_all(panel.assign(dataset=panel["dataset"].fillna("(none)"), subset=panel["subset"].fillna("(none)")))
    for (ds, sub), h in h_all.groupby(["dataset", "subset"], sort=True):
        votes = h.set_index("item")["verdict"]
        for setup, ban in SETUPS.items():
            rows.append({"dataset": ds, "subset": sub, "judge_1": HUMAN_VS_HUMAN, "judge_2": panel_name,
                         "kind": "human", "humans": panel_name, "setup": setup,
                         **_ratio_row(human_vs_human(votes, ban), n_boot, seed, ci)})
        if verdicts is None:
            continue
        v = verdicts[verdicts["item"].isin(set(votes.index))]
        for ann, d in v.groupby("annotator", sort=True):
            per_item = d.set_index("item")["verdict"]
            for setup, ban in SETUPS.items():
                rows.append({"dataset": ds, "subset": sub, "judge_1": ann, "judge_2": panel_name,
                             "kind": d["kind"].iloc[0], "humans": panel_name, "setup": setup,
                             **_ratio_row(annotator_vs_humans(per_item, votes, ban), n_boot, seed, ci)})
    out = pd.DataFrame(rows, columns=VOTE_PAIR_COLUMNS)
    return out[out["n"] > 0].reset_index(drop=True)  # no vote pair (e.g. one human vote per item): no row


def vote_pair_tables(frame: pd.DataFrame, unparsed: str = "wrong", n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
                     ci: float = 0.95) -> pd.DataFrame:
    """All humans as the panel, and, where some human annotators are named 'expert_*' and some are
    not, the experts-only panel too (FastChat's definition of "human")."""
    out = [vote_pair_agreement(frame, unparsed, False, n_boot, seed, ci)]
    names = {local_name(a) for a in frame.loc[frame["kind"] == "human", "annotator"].unique()}
    experts = {n for n in names if n.startswith("expert")}
    if experts and experts != names:
        out.append(vote_pair_agreement(frame, unparsed, True, n_boot, seed, ci))
    return pd.concat(out, ignore_index=True)
