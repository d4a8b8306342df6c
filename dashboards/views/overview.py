"""Overview, the front page: the demo's study (`harness demo`, harness/pipelines/demo.py) — its
question, its arms, which contrasts the 95% CIs resolve and which not, each feedback source's
labels against gold, and the validity cards of every judge used — with links to the pages that
show each part in detail. The win rates and gold differences per arm and judge come first, as forest
plots (plots.forest_chart), the tables after."""
import pandas as pd
import streamlit as st

from dashboards import common, results
from harness import plots

common.header("Overview")
stored = common.results("demo_summary")
if not stored:
    common.empty("demo study", "make demo` (or `harness demo")
    st.page_link("views/leaderboard.py", label="Leaderboard: every stored win rate", icon=":material/leaderboard:")
    st.stop()
by_label = {f"#{r['result_id']} {r['result'].get('group')}": r for r in reversed(stored)}
res = by_label[st.selectbox("Demo run", list(by_label), key="overview_demo")]["result"]
if "design" not in res:  # a summary written before the demo became a study (no arms table, no sources)
    st.info("This demo summary predates the study layout; run `make demo` again to see it here.")
    st.json(res.get("findings", []))
    st.stop()

st.subheader(res.get("question") or res["group"])
budget = res.get("budget", {})
st.caption(f"task {res.get('task')} · {len(res['design'])} arms from one initial policy, each "
           f"{budget.get('steps')} steps x {budget.get('prompts_per_step')} prompts · evaluated on "
           f"{res.get('eval_n')} eval prompts (greedy) by {', '.join(res.get('eval_judges', []))} · "
           f"CIs: {res.get('ci_method')} · {res.get('seconds', 0) / 60:.1f} min")

wins, diffs = results.demo_forest(res)
left, right = st.columns(2)
with left:
    if not wins.empty:
        common.chart(plots.forest_chart(wins, 0.5, "Win rate per arm and judge (95% CI)", "win rate (ties half)"))
with right:
    if not diffs.empty:
        common.chart(plots.forest_chart(diffs, 0.0, "Gold score difference (95% paired bootstrap CI)",
                                        "gold points, a - b (0..2 scale)"))

st.markdown("#### In words")
st.markdown("\n".join(f"- {line.strip()}" for line in res.get("findings", [])))

rows = pd.DataFrame(res.get("rows", []))
h2h = pd.DataFrame(res.get("head_to_head", []))
st.markdown("#### Arms")
st.dataframe(pd.DataFrame(res["design"]), hide_index=True)
st.markdown("#### Win rates")
st.caption("win_rate: mean over prompts of win 1 / tie 0.5 / loss 0, each prompt judged in both orders; "
           "gold_diff: paired mean of the policy's minus the initial policy's gold score (0..2).")
st.dataframe(rows.drop(columns=["verdict", "ci_low", "ci_high", "gold_diff_ci"], errors="ignore").round(3), hide_index=True)
if not h2h.empty:
    st.dataframe(h2h.drop(columns=["verdict", "ci_low", "ci_high", "gold_diff_ci"], errors="ignore").round(3), hide_index=True)

st.markdown("#### Feedback sources against gold")
sources = pd.DataFrame(res.get("sources", []))
if sources.empty:
    common.plain("no source was scored against gold (the task has no gold scorer, or no offline/OAIF arm ran)")
else:
    measured = sources.dropna(subset=["accuracy"]) if "accuracy" in sources else sources.iloc[0:0]
    if not measured.empty:
        chart_df = measured.assign(annotator=measured["source"] + " on " + measured["pairs"],
                                   n=measured["n_gold_decided"])
        common.chart(plots.gold_accuracy_chart(chart_df, title="Each source's labels vs gold (95% Wilson CI)"))
    st.dataframe(sources.drop(columns=["verdict"], errors="ignore").round(3), hide_index=True)

st.markdown("#### Validity of every judge used")
vs_gold = pd.DataFrame(res.get("eval_judges_vs_gold", []))
if not vs_gold.empty:
    st.caption("Evaluation judges against gold on the same eval comparisons: accuracy = the judge gives gold's "
               "verdict / prompts gold decides (its ties count as wrong), Wilson 95%; consistency = both orders agree.")
    st.dataframe(vs_gold.round(3), hide_index=True)
for who, line in res.get("judge_cards", {}).items():
    st.markdown(f"**{who}**")
    common.plain(line)

st.markdown("#### In detail")
for path, label, icon in (("views/replication.py", "Replication: `make study`, the papers' comparisons over 3 seeds", "science"),
                          ("views/training.py", "Training: loss, length and labels per step of each arm", "show_chart"),
                          ("views/gold.py", "Annotators vs gold: every annotator on shared pairs", "rule"),
                          ("views/validity.py", "Judge validity: the cards with their CIs", "verified"),
                          ("views/annotators.py", "Annotators: agreement with the PandaLM human majority", "groups"),
                          ("views/leaderboard.py", "Leaderboard: every stored win rate", "leaderboard"),
                          ("views/pair_browser.py", "Pair browser: the pairs and every label", "compare")):
    st.page_link(path, label=label, icon=f":material/{icon}:")
