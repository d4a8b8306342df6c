"""Pair browser: prompt and both responses side by side with every annotator's verdict and raw
output; filters (disagreements only, one annotator, one run/step, dataset), text search, pages."""
import math

import pandas as pd
import streamlit as st

from dashboards import common
from dashboards import queries as Q

common.header("Pair browser")
datasets = pd.DataFrame(common.read("datasets"))
runs = common.read("run_ids")
annotators = [a["annotator_id"] for a in common.annotators()]

with st.container(border=True):
    c1, c2, c3, c4 = st.columns([1, 1, 1, 1])
    with c1:
        disagree = st.checkbox("Disagreements only", key="pb_disagree",
                               help="pairs whose annotators gave different (parsed) verdicts")
        annotator = common.pick("Annotator", sorted(set(annotators)), key="pb_annotator")
        kind = common.pick("Annotator kind", list(Q.KINDS), key="pb_kind")
    with c2:
        dataset = common.pick("Dataset", sorted(datasets["dataset"].unique()) if not datasets.empty else [],
                              key="pb_dataset")
        subs = sorted(datasets.loc[datasets["dataset"] == dataset, "subset"].dropna().unique()) if dataset else []
        subset = common.pick("Subset", subs, key="pb_subset")
    with c3:
        run_id = common.pick("Run", runs, key="pb_run")
        steps = common.read("steps", run_id) if run_id else []
        step = common.pick("Step", steps, key="pb_step")
    with c4:
        search = st.text_input("Search prompt and responses", key="pb_search", help=f"at most {Q.MAX_SEARCH} characters")
        page_size = st.selectbox("Pairs per page", [10, 20, 50], index=0, key="pb_page_size")

problem = Q.check_search(search)
if problem:
    st.error(problem)
    st.stop()
flt = Q.PairFilter(disagreements_only=disagree, annotator=annotator, kind=kind, run_id=run_id, step=step,
                   dataset=dataset, subset=subset, search=search.strip())
page = st.number_input("Page", min_value=1, value=1, step=1, key="pb_page")
pairs, total = common.pairs_page(flt, page_size, (page - 1) * page_size)
n_pages = max(1, math.ceil(total / page_size))
st.session_state["pb_n_pages"] = n_pages
st.subheader(f"{total:,} pairs match · page {page} of {n_pages:,}")
if page > n_pages:
    st.warning(f"There are only {n_pages} pages.")
if pairs.empty:
    if total == 0:
        st.info("No pair matches these filters.")
    st.stop()

labels = common.labels_for(pairs["pair_id"].tolist())
for _, p in pairs.iterrows():
    where_from = " · ".join(str(x) for x in (p["dataset"], p["subset"], p["run_id"],
                                             None if pd.isna(p["step"]) else f"step {int(p['step'])}",
                                             p["record_id"] and f"record {p['record_id']}") if x)
    # imported strings go through plain text only: markdown would load `![x](http://host/t.png)`
    with st.container(border=True):
        common.plain(f"Pair {p['pair_id']} · {where_from or p['source']}")
        st.markdown("**Prompt**")
        common.verbatim(p["prompt"])
        a, b = st.columns(2)
        with a:
            st.markdown("**Response A**")
            common.plain(f"{p['policy_a'] or 'policy ?'} · {len(p['response_a'])} chars")
            common.verbatim(p["response_a"])
        with b:
            st.markdown("**Response B**")
            common.plain(f"{p['policy_b'] or 'policy ?'} · {len(p['response_b'])} chars")
            common.verbatim(p["response_b"])
        mine = labels[labels["pair_id"] == p["pair_id"]] if not labels.empty else labels
        if mine.empty:
            st.caption("No labels on this pair.")
        else:
            st.dataframe(mine[["annotator_id", "annotator_kind", "verdict", "shown_order", "p_a", "raw_output",
                               "run_id", "step", "cached"]].rename(columns={"annotator_id": "annotator"}),
                         hide_index=True, column_config={"p_a": st.column_config.NumberColumn(format="%.3f")})
