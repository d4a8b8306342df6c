"""Annotators: every annotator x every other (agreement / Cohen's kappa heatmap), agreement with a
reference (kappa, accuracy per order), the human–human ceiling, and position and length bias, per
subset. Reference tables come from stored `harness agreement` results; a dataset without one is
computed live with the same functions (harness.evaluation.agreement). From the latest stored result
of the dataset only: alpaca_eval's annotator table (harness.evaluation.annotator_table), agreement by
definition (majority, loo, MT-Bench's vote pairs: harness.evaluation.agreement_defs) and cyclic triads
next to the Bradley-Terry fit (harness.evaluation.triads)."""
import pandas as pd
import streamlit as st

from dashboards import common
from dashboards import results as R
from harness import plots

common.header("Annotators")
ann = pd.DataFrame(common.annotators())
if ann.empty:
    common.empty("annotators or labels", "harness import-labels ...` or `harness judge ...")
    st.stop()
st.subheader(f"{len(ann)} annotators, {int(ann['n_labels'].sum()):,} labels")
st.dataframe(ann[["annotator_id", "kind", "version", "n_labels"]], hide_index=True,
             height=min(300, 38 + 35 * len(ann)))

stored = common.results("agreement")
table = R.agreement(stored)
datasets = sorted({d["dataset"] for d in common.read("datasets")} | set(table.get("dataset", [])))
if not datasets:
    st.info("No labelled pairs with a dataset in this store.")
    st.stop()
c1, c2 = st.columns(2)
with c1:
    dataset = st.selectbox("Dataset", datasets, key="an_dataset")

from_store = not table.empty and (table["dataset"] == dataset).any()
if from_store:
    view = table[table["dataset"] == dataset]
    human = R.ceilings(stored)
    bias = R.bias(stored)
    source = "stored `harness agreement` results"
else:
    view, human, bias = common.live_agreement(dataset)
    source = "computed live (no stored `harness agreement` result for this dataset)"
human = human[human["dataset"] == dataset] if not human.empty else human
bias = bias[bias["dataset"] == dataset] if not bias.empty else bias
subsets = sorted(set(view.get("subset", pd.Series(dtype=str)).astype(str)) | set(bias.get("subset", [])))
default = subsets.index(R.ALL) if R.ALL in subsets else 0
with c2:
    subset = st.selectbox("Subset", subsets, index=default, key="an_subset") if subsets else None

st.header("Agreement heatmap")
pw = common.pairwise(dataset)
pw = pw[pw["subset"].astype(str) == subset] if subset is not None else pw
if pw.empty:
    st.info("No two annotators labelled the same items here.")
else:
    metric = st.radio("Cell value", ["agreement", "kappa"], horizontal=True, key="an_metric")
    grid = pd.concat([pw.rename(columns={"annotator_1": "annotator_a", "annotator_2": "annotator_b"}),
                      pw.rename(columns={"annotator_1": "annotator_b", "annotator_2": "annotator_a"})])
    st.caption("Every annotator against every other on the items both labelled; "
               "computed with harness.evaluation.agreement.pairwise_kappa.")
    common.plain(f"dataset {dataset} · subset {subset}")  # imported names: plain text, not markdown
    common.chart(plots.agreement_heatmap(grid, value=metric))

st.header("Agreement with the reference")
st.caption(f"Source: {source}.")
rows = view[view["subset"].astype(str) == subset] if subset is not None else view
if rows.empty:
    st.info("No agreement rows for this subset.")
else:
    refs = sorted(rows["reference"].astype(str).unique())
    if len(refs) > 1:
        rows = rows[rows["reference"].astype(str) == st.selectbox("Reference", refs, key="an_reference")]
    first = ["annotator", "kind", "reference", "n", "agreement", "agreement_no_ties", "kappa", "acc_ab", "acc_ba",
             "acc_avg", "acc_both", "position_consistency", "p_first", "p_longer"]
    cols = [c for c in first if c in rows.columns]
    shown = rows[cols].dropna(axis=1, how="all").sort_values("agreement", ascending=False)
    st.dataframe(shown, hide_index=True, column_config={c: st.column_config.NumberColumn(format="%.3f")
                                                        for c in cols if c not in ("annotator", "kind", "reference", "n")})

st.header("Human–human ceiling")
h = human[human["subset"].astype(str) == subset] if not human.empty and subset is not None else human
if h.empty:
    st.info("No items with several human labels here.")
else:
    top = h.iloc[0]
    k1, k2, k3 = st.columns(3)
    k1.metric("Ceiling (leave-one-out human agreement)", f"{top['ceiling']:.3f}",
              help=f"95% CI {common.fmt_ci(top.get('ceiling_ci_low'), top.get('ceiling_ci_high'))}")
    if "fleiss_kappa" in h.columns:
        k2.metric("Fleiss' kappa", f"{top['fleiss_kappa']:.3f}")
    if "krippendorff_alpha" in h.columns:
        k3.metric("Krippendorff's alpha", f"{top['krippendorff_alpha']:.3f}")
    st.caption(f"{int(top.get('n_items', 0))} items with ≥ 2 human labels.")

st.header("Position and length bias")
b = bias[bias["subset"].astype(str) == subset] if not bias.empty and subset is not None else bias
long = R.bias_long(b) if not b.empty else b
if long.empty:
    st.info("No P(prefers first shown) or P(prefers longer) for this subset.")
else:
    common.chart(plots.bias_chart(long, title=f"Position and length bias ({subset})"))
    st.caption("P(prefers first shown) counts only labels whose presentation order is known; "
               "0.5 = no bias.")


def latest_rows(key: str) -> pd.DataFrame:
    """Rows of `key` in the latest stored `harness agreement` result that has rows of this dataset."""
    for r in reversed(stored):
        rows = [x for x in (r["result"].get(key) or []) if str(x.get("dataset")) == dataset]
        if rows:
            df = pd.DataFrame(rows)
            return df[df["subset"].astype(str) == subset] if subset is not None and (df["subset"] == subset).any() \
                else df[df["subset"].astype(str) == R.ALL] if (df["subset"] == R.ALL).any() else df
    return pd.DataFrame()


def number_columns(df: pd.DataFrame) -> dict:
    return {c: st.column_config.NumberColumn(format="%.3f") for c in df.columns
            if pd.api.types.is_float_dtype(df[c]) and not c.startswith("n_")}


NOT_STORED = "Not in a stored result for this dataset: run `harness agreement --dataset {}` to compute it."

st.header("Annotator table (alpaca_eval)")
at_rows = latest_rows("annotator_table")
if at_rows.empty:
    st.info(NOT_STORED.format(dataset))
else:
    at_cols = ["annotator", "kind", "n_items", "n_humans", "human_agreement", "human_agreement_ci_low",
               "human_agreement_ci_high", "loo_agreement", "spearman", "pearson", "n_policies", "variance", "p_longer",
               "p_lists", "p_first", "seconds_per_1000", "cost_per_1000", "tokens_per_1000"]
    shown = at_rows[[c for c in at_cols if c in at_rows.columns]]
    st.dataframe(shown, hide_index=True, column_config=number_columns(shown))
    st.caption("alpaca_eval's analyze_evaluators columns: human_agreement against the mode of n_humans human votes "
               "(its tie-break; a tie earns 0.5), loo_agreement leave-one-out, Spearman/Pearson of the policy "
               "leaderboard against the humans', variance = 1 − self-agreement on repeated labels, P(prefers "
               "longer) when lengths differ by > 30 characters, P(prefers lists), P(prefers first shown), seconds, "
               "cost and tokens per 1000 labels. Baseline rows: always longer / shorter / first.")

st.header("Agreement by definition")
defs = latest_rows("definitions")
if defs.empty:
    st.info(NOT_STORED.format(dataset))
else:
    names = sorted(defs["definition"].astype(str).unique())
    default_def = names.index("vote-pairs") if "vote-pairs" in names else 0
    chosen = st.selectbox("Definition", names, index=default_def, key="an_definition")
    d = defs[defs["definition"] == chosen][["annotator", "versus", "humans", "ties", "n", "agreement", "ci_low",
                                            "ci_high"]]
    st.dataframe(d, hide_index=True, column_config=number_columns(d))
    st.caption("majority: against the reference verdict (PandaLM, LLMBar); loo: alpaca_eval's leave-one-out; "
               "vote-pairs: MT-Bench's Table 5 (FastChat compute_agreement.py), each vote pair counted, S1 with ties, "
               "S2 without; 95% bootstrap CIs over items / comparisons.")

st.header("Cyclic triads and the Bradley–Terry fit")
tri = latest_rows("triads")
tri = tri[tri["n_bt_votes"] > 0] if not tri.empty else tri
if tri.empty:
    st.info("No annotator here judged pairs that name both policies.")
else:
    t_cols = ["annotator", "n_triads", "n_tied", "n_decided", "n_cyclic", "cyclic_rate", "cyclic_ci_low",
              "cyclic_ci_high", "n_bt_votes", "bt_agreement", "bt_ci_low", "bt_ci_high"]
    st.dataframe(tri[t_cols], hide_index=True, column_config=number_columns(tri[t_cols]))
    st.caption("A triad: three policies on one prompt with all three pairs judged; cyclic: each policy wins once "
               "(0.25 for coin flips). bt_agreement: the share of decided votes the Bradley–Terry fit's ranking "
               "predicts. 95% bootstrap CIs over prompts.")
