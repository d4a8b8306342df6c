"""The bundles the CLI prints and stores (`agreement`, `leaderboard` results): DataFrames in, dicts out.

`agreement_report(labels, reference)` -> {'agreement', 'human_reliability', 'loo', 'pairwise_kappa', 'bias'}:
  DataFrames as defined in agreement.py. reference 'auto' means, per dataset: 'gold' where an
  annotator id ends in ':gold', else 'human-majority'.
`leaderboard_report(labels)` -> {'ratings', 'win_rate_matrix', 'battle_counts', 'battles'}:
  bradley_terry.py's table and matrices over battles_frame(labels).
"""
from __future__ import annotations

import pandas as pd

from .agreement import (AGREEMENT_COLUMNS, DEFAULT_MIN_LEN_DIFF, agreement_table, bias_table, human_loo_agreement,
                        human_reliability, pairwise_kappa)
from .bootstrap import DEFAULT_N_BOOT
from .bradley_terry import battle_counts, bradley_terry, win_rate_matrix
from .frames import battles_frame


def resolve_reference(labels: pd.DataFrame, reference: str) -> str:
    if reference != "auto":
        return reference
    ids = set(labels["annotator_id"] if "annotator_id" in labels else labels["annotator"])
    return "gold" if any(str(a).endswith(":gold") for a in ids) else "human-majority"


def agreement_report(labels: pd.DataFrame, reference: str = "auto", unparsed: str = "wrong", annotators=None,
                     n_boot: int = DEFAULT_N_BOOT, seed: int = 0, min_len_diff: float = DEFAULT_MIN_LEN_DIFF) -> dict:
    """All annotator tables for the labels given, dataset by dataset (module docstring)."""
    out = {k: [] for k in ("agreement", "human_reliability", "loo", "pairwise_kappa", "bias")}
    for _, lab in labels.groupby(labels["dataset"].fillna("(none)"), sort=True):
        ref = resolve_reference(lab, reference)
        try:
            out["agreement"].append(agreement_table(lab, ref, unparsed, annotators, n_boot, seed,
                                                    min_len_diff=min_len_diff))
        except ValueError:
            if reference != "auto" and len(labels["dataset"].unique()) == 1:
                raise  # the named reference is not in the only dataset asked for: say so
        out["human_reliability"].append(human_reliability(lab, unparsed, n_boot, seed))
        out["loo"].append(human_loo_agreement(lab, unparsed, n_boot, seed))
        out["pairwise_kappa"].append(pairwise_kappa(lab, unparsed))
        out["bias"].append(bias_table(lab, unparsed, min_len_diff, n_boot, seed))
    empty = {"agreement": pd.DataFrame(columns=AGREEMENT_COLUMNS)}
    tables = {k: (pd.concat([d for d in v if not d.empty], ignore_index=True) if any(not d.empty for d in v)
                  else empty.get(k, pd.DataFrame())) for k, v in out.items()}
    if annotators:  # rows of the other annotators go; the humans' reliability stays (it is about the panel)
        for k in ("loo", "bias"):
            if not tables[k].empty:
                tables[k] = tables[k][tables[k]["annotator"].isin(set(annotators))].reset_index(drop=True)
    return tables


def leaderboard_report(labels: pd.DataFrame, n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
                       anchor: tuple[str, float] | None = None) -> dict:
    battles = battles_frame(labels)
    return {"battles": battles, "ratings": bradley_terry(battles, n_boot=n_boot, seed=seed, anchor=anchor),
            "win_rate_matrix": win_rate_matrix(battles), "battle_counts": battle_counts(battles)}
