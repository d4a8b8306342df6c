"""Definitions of agreement as data: a registry name -> function, each giving one long table
(DEF_COLUMNS) of annotator-vs-humans and human-vs-human rows, each with n and a 95% CI.

  majority    agreement.agreement_table against the report's reference ('auto': gold where a ':gold'
              annotator exists, else the human majority): an annotator against the human majority
              (versus 'humans', or 'gold' / the reference annotator), a human against the mode of the
              other humans (versus 'human vs human'); 'S1 (with ties)' is `agreement` (ties must match
              ties, n items), 'S2 (without ties)' is `agreement_no_ties` (items where neither says tie).
              PandaLM's and LLMBar's papers report this figure (against the human majority / gold).
  loo         humans.human_loo_agreement: alpaca_eval's leave-one-out credit against the humans' mode
              (S1 only, n items), plus the pooled human-human ceiling (annotator 'humans').
              alpaca_eval's annotator leaderboard reports this kind of figure (its exact variant, with
              its own tie-break and scoring rule, is the annotator table's `human_agreement`).
  vote-pairs  vote_pairs.vote_pair_tables: MT-Bench's Table 5 (Zheng et al. 2023), FastChat's
              compute_agreement.py: S1 and S2 over vote pairs, per subset (turn), all humans and, where
              the human judges are named 'expert_*' and others, the experts alone (column `humans`).
"""
from __future__ import annotations

from typing import Callable, Sequence

import pandas as pd

from .bootstrap import DEFAULT_N_BOOT
from .reports import agreement_report
from .vote_pairs import HUMAN_VS_HUMAN, vote_pair_tables

DEF_COLUMNS = ["definition", "dataset", "subset", "annotator", "kind", "versus", "humans", "ties", "n", "agreement",
               "ci_low", "ci_high"]
S1, S2 = "S1 (with ties)", "S2 (without ties)"
POOLED_HUMANS = "humans"
_VERSUS = {"human majority": "humans", "majority of other humans (LOO)": HUMAN_VS_HUMAN}


def _report(labels, opts, tables):
    if tables is not None:
        return tables
    return agreement_report(labels, opts.get("reference", "auto"), opts.get("unparsed", "wrong"), None,
                            opts.get("n_boot", DEFAULT_N_BOOT), opts.get("seed", 0))


def majority(labels: pd.DataFrame, tables: dict | None = None, **opts) -> pd.DataFrame:
    rows = []
    for _, r in _report(labels, opts, tables)["agreement"].iterrows():
        base = {"definition": "majority", "dataset": r["dataset"], "subset": r["subset"], "annotator": r["annotator"],
                "kind": r["kind"], "versus": _VERSUS.get(r["reference_used"], r["reference_used"]),
                "humans": "human" if r["reference_used"] in _VERSUS else r["reference_used"]}
        rows.append({**base, "ties": S1, "n": r["n"], "agreement": r["agreement"], "ci_low": r["agreement_ci_low"],
                     "ci_high": r["agreement_ci_high"]})
        rows.append({**base, "ties": S2, "n": r["n_no_ties"], "agreement": r["agreement_no_ties"],
                     "ci_low": r["agreement_no_ties_ci_low"], "ci_high": r["agreement_no_ties_ci_high"]})
    return pd.DataFrame(rows, columns=DEF_COLUMNS)


def loo(labels: pd.DataFrame, tables: dict | None = None, **opts) -> pd.DataFrame:
    t = _report(labels, opts, tables)
    rows = []
    for _, r in t["loo"].iterrows():
        rows.append({"definition": "loo", "dataset": r["dataset"], "subset": r["subset"], "annotator": r["annotator"],
                     "kind": r["kind"], "versus": HUMAN_VS_HUMAN if r["kind"] == "human" else "humans",
                     "humans": "human", "ties": S1, "n": r["n_items"], "agreement": r["loo_agreement"],
                     "ci_low": r["ci_low"], "ci_high": r["ci_high"]})
    for _, r in t["human_reliability"].iterrows():
        rows.append({"definition": "loo", "dataset": r["dataset"], "subset": r["subset"], "annotator": POOLED_HUMANS,
                     "kind": "human", "versus": HUMAN_VS_HUMAN, "humans": "human", "ties": S1, "n": r["n_items"],
                     "agreement": r["ceiling"], "ci_low": r["ceiling_ci_low"], "ci_high": r["ceiling_ci_high"]})
    return pd.DataFrame(rows, columns=DEF_COLUMNS)


def vote_pairs(labels: pd.DataFrame, tables: dict | None = None, **opts) -> pd.DataFrame:
    t = tables["vote_pairs"] if tables and "vote_pairs" in tables else vote_pair_tables(
        labels, opts.get("unparsed", "wrong"), opts.get("n_boot", DEFAULT_N_BOOT), opts.get("seed", 0))
    hh = t["judge_1"] == HUMAN_VS_HUMAN
    return pd.DataFrame({"definition": "vote-pairs", "dataset": t["dataset"], "subset": t["subset"],
                         "annotator": t["judge_1"].where(~hh, POOLED_HUMANS), "kind": t["kind"],
                         "versus": hh.map({True: HUMAN_VS_HUMAN, False: "humans"}), "humans": t["humans"],
                         "ties": t["setup"], "n": t["n"], "agreement": t["agreement"], "ci_low": t["ci_low"],
                         "ci_high": t["ci_high"]}, columns=DEF_COLUMNS)


# name -> function(labels, tables=None, **opts) -> DEF_COLUMNS rows; `tables`: an agreement_report bundle
# already computed for these labels (majority and loo read it, vote-pairs its 'vote_pairs' if there)
DEFINITIONS: dict[str, Callable[..., pd.DataFrame]] = {"majority": majority, "loo": loo, "vote-pairs": vote_pairs}


def definitions_table(labels: pd.DataFrame, names: Sequence[str] = tuple(DEFINITIONS), tables: dict | None = None,
                      reference: str = "auto", unparsed: str = "wrong", n_boot: int = DEFAULT_N_BOOT,
                      seed: int = 0) -> pd.DataFrame:
    """The named definitions' rows, one table (DEF_COLUMNS)."""
    unknown = [n for n in names if n not in DEFINITIONS]
    if unknown:
        raise ValueError(f"unknown agreement definition {', '.join(unknown)}; known: {', '.join(DEFINITIONS)}")
    if tables is None and {"majority", "loo"} & set(names):
        tables = _report(labels, {"reference": reference, "unparsed": unparsed, "n_boot": n_boot, "seed": seed}, None)
    parts = [DEFINITIONS[n](labels, tables, reference=reference, unparsed=unparsed, n_boot=n_boot, seed=seed)
             for n in names]
    parts = [p for p in parts if not p.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=DEF_COLUMNS)
