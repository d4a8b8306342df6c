"""Evaluation statistics: win rates with CIs, length-controlled win rate, Bradley-Terry ratings,
annotator agreement, position/length bias and human reliability. Pure functions on DataFrames /
arrays (each module's docstring defines its numbers); `frames` reads the store into those frames.
"""
from .agreement import (AGREEMENT_COLUMNS, agreement_table, attach_reference, bias_table, human_loo_agreement,
                        human_reliability, pairwise_kappa, per_item_verdicts)
from .bootstrap import bootstrap_ci, bootstrap_mean_ci, percentile_ci
from .bradley_terry import battle_counts, bradley_terry, predicted_win_rates, win_rate_matrix
from .frames import battles_frame, label_frame, matrix_to_dict, to_records
from .reliability import cohen_kappa, fleiss_kappa, krippendorff_alpha_nominal, macro_prf
from .winrate import format_lc, length_controlled_win_rate, length_controlled_win_rates, preference_scores, win_rate

__all__ = [
    "AGREEMENT_COLUMNS", "agreement_table", "attach_reference", "battle_counts", "battles_frame", "bias_table",
    "bootstrap_ci", "bootstrap_mean_ci", "bradley_terry", "cohen_kappa", "fleiss_kappa", "human_loo_agreement",
    "human_reliability", "krippendorff_alpha_nominal", "label_frame", "length_controlled_win_rate", "macro_prf",
    "matrix_to_dict", "pairwise_kappa", "per_item_verdicts", "percentile_ci", "predicted_win_rates",
    "preference_scores", "to_records", "format_lc", "length_controlled_win_rates",
    "win_rate", "win_rate_matrix",
]
