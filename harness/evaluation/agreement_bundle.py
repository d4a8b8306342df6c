"""Everything `harness agreement` computes and stores, from one label frame.

`agreement_bundle(labels, ...)` -> reports.agreement_report's tables ('agreement', 'human_reliability',
'loo', 'pairwise_kappa', 'bias') plus
  'vote_pairs'       vote_pairs.vote_pair_tables (MT-Bench's S1/S2 per vote pair)
  'definitions'      agreement_defs.definitions_table over every registered definition
  'annotator_table'  annotator_table.annotator_table (alpaca_eval's annotator table, baseline rows)
  'triads'           triads.triad_table (cyclic triads, Bradley-Terry fit agreement)
The labels should carry comparisons.add_features' columns (prompt_key, list flags, latency/cost):
without prompt_key a comparison is keyed by its item, without list flags p_lists is NaN.
`annotators` keeps those annotators' rows (and the humans' and baselines' rows of the new tables).
"""
from __future__ import annotations

import pandas as pd

from .agreement_defs import definitions_table
from .annotator_table import annotator_table
from .bootstrap import DEFAULT_N_BOOT
from .items import DEFAULT_MIN_LEN_DIFF
from .reports import agreement_report
from .triads import triad_table
from .vote_pairs import HUMAN_VS_HUMAN, vote_pair_tables

NEW_TABLES = ("vote_pairs", "definitions", "annotator_table", "triads")
_ALWAYS = {HUMAN_VS_HUMAN, "humans", "always longer", "always shorter", "always first"}


def _keep(df: pd.DataFrame, col: str, annotators) -> pd.DataFrame:
    if df.empty or not annotators:
        return df
    return df[df[col].isin(set(annotators) | _ALWAYS)].reset_index(drop=True)


def agreement_bundle(labels: pd.DataFrame, reference: str = "auto", unparsed: str = "wrong", annotators=None,
                     n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
                     min_len_diff: float = DEFAULT_MIN_LEN_DIFF) -> dict[str, pd.DataFrame]:
    tables = agreement_report(labels, reference, unparsed, annotators, n_boot, seed, min_len_diff)
    tables["vote_pairs"] = _keep(vote_pair_tables(labels, unparsed, n_boot, seed), "judge_1", annotators)
    tables["definitions"] = _keep(definitions_table(labels, tables=tables, reference=reference, unparsed=unparsed,
                                                    n_boot=n_boot, seed=seed), "annotator", annotators)
    tables["annotator_table"] = _keep(annotator_table(labels, unparsed, min_len_diff, n_boot, seed), "annotator",
                                      annotators)
    tables["triads"] = _keep(triad_table(labels, unparsed, n_boot, seed), "annotator", annotators)
    return tables
