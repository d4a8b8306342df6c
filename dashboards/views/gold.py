"""Annotators vs gold: every annotator's accuracy against the gold scorer of a verifiable task, as
`harness agreement --gold TASK` stored it (harness/evaluation/gold_agreement.py): accuracy with its
95% Wilson CI, ties, position consistency, P(first), P(longer) next to gold's own P(longer) on the
same pairs, and the simulated human-human ceiling (bootstrap CI) drawn as a band."""
import streamlit as st

from dashboards import common
from dashboards import results as R
from harness.plots import gold_accuracy_chart

common.header("Annotators vs gold")
stored = common.results("gold_agreement")
if not stored:
    common.empty("annotators-vs-gold results", "harness agreement --gold verifiable")
    st.stop()
by_label = {f"#{r['result_id']} {r['result'].get('task')} ({r['result'].get('split')}), "
            f"{r['result'].get('n_pairs')} pairs": r for r in reversed(stored)}
choice = st.selectbox("Result", list(by_label), key="gold_result")
res = by_label[choice]["result"]
table, ceiling = R.gold_agreement(res)
share = (res.get("pairs") or {}).get("gold_share", {}).get("decided") or {}
pairs = res.get("pairs") or {}
st.subheader(f"{res.get('n_pairs')} pairs, gold decides {share.get('count')} of them")
st.caption(f"Pairs: {pairs.get('samples_per_prompt')} samples per prompt of {pairs.get('policy')} on "
           f"{pairs.get('n_prompts')} {res.get('split')} prompts (temperature {pairs.get('temperature')}, "
           f"{pairs.get('max_new_tokens')} new tokens), every two samples paired. "
           + (f"Gold decides {share['value']:.2f} of the pairs (95% Wilson CI "
              f"{common.fmt_ci(share['ci_low'], share['ci_high'])}); accuracy is measured on those only."
              if share.get("value") is not None else ""))
measured = table[table["status"] == "measured"]
if not measured.empty:
    common.chart(gold_accuracy_chart(measured, ceiling))
if ceiling and ceiling.get("accuracy") is not None:
    st.markdown(f"Simulated human-human ceiling: **{ceiling['accuracy']:.3f}** "
                f"(95% CI {common.fmt_ci(ceiling.get('accuracy_ci_low'), ceiling.get('accuracy_ci_high'))}, "
                f"n = {ceiling.get('n')} pairs; raters {ceiling.get('version')})")
elif ceiling:
    common.plain(f"simulated human-human ceiling: {ceiling.get('status')}")
est = res.get("estimators") or {}
st.caption("All columns are proportions in [0, 1]. accuracy: " + est.get("accuracy", "") + " (ci_low/ci_high: 95% "
           "Wilson). consistency / p_first: both-order judges only. p_longer vs gold_p_longer: on the same n_longer "
           "pairs (judge and gold both decisive, word counts differ): above gold's rate = pulled toward length.")
st.dataframe(table, hide_index=True, column_config={c: st.column_config.NumberColumn(format="%.3f") for c in (
    "accuracy", "ci_low", "ci_high", "tie_share", "accuracy_no_ties", "consistency", "p_first", "p_longer",
    "gold_p_longer")})
for _, r in table[table["status"] != "measured"].iterrows():
    common.plain(f"{r['annotator']}: {r['status']}")
