"""Judge validity: every stored validity card (harness/evaluation/validity.py), one per annotator
version: position consistency, P(prefers first shown), P(prefers longer) and agreement with the
held-out human references (PandaLM human majority, LLMBar gold), each with n and a 95% Wilson CI."""
import streamlit as st

from dashboards import common
from dashboards import results as R

common.header("Judge validity")
stored = common.results("judge_validity")
if not stored:
    common.empty("judge validity cards", "harness validity --judge NAME` or an OAIF `harness train")
    st.stop()
rows = R.validity(stored)
st.subheader(f"{len(stored)} cards, {rows['annotator'].nunique()} annotators")
st.caption("Each figure is a proportion with its n and a 95% Wilson score interval. position_consistency: "
           "pairs whose two presentation orders got the same verdict; p_first: labels preferring the response "
           "shown first (0.5 = no position bias); p_longer: decided pairs where the longer response won; "
           "agreement: combined verdict vs the reference (with ties: a judge tie counts as wrong; no ties: "
           "decided verdicts only).")
st.dataframe(rows, hide_index=True, column_config={c: st.column_config.NumberColumn(format="%.3f")
                                                   for c in ("value", "ci_low", "ci_high")})
for r in stored:
    card = r["result"]
    if card.get("skipped"):
        common.plain(f"{card.get('annotator_id')}@{card.get('annotator_version')}: skipped "
                     + "; ".join(f"{k} ({v})" for k, v in card["skipped"].items()))
