"""Replication: the table of `make study` (harness replicate, harness/pipelines/study.py) — each
contrast of the OAIF and robust-DPO papers as a paired per-seed difference with its t CI and a
verdict (reproduced / not reproduced / not resolved), each arm's gold figures over seeds, and every
(arm, seed) cell with its run."""
import pandas as pd
import streamlit as st

from dashboards import common
from harness import plots

common.header("Replication", "the papers' comparisons at small scale, several seeds, gold as the truth")
from harness.overopt_plot import dashboard_block  # reward over-optimisation (harness overopt), newest result
dashboard_block(common.results("overopt"), common.chart)
stored = common.results("study_summary")
if not stored:
    common.empty("study", "make study` (or `harness replicate")
    st.stop()
by_label = {f"#{r['result_id']} {r['result'].get('group')}": r for r in reversed(stored)}
res = by_label[st.selectbox("Study", list(by_label), key="replication_study")]["result"]

st.subheader(res.get("question") or res["group"])
ev, b = res["eval"], res["budget"]
st.caption(f"{len(res['arms'])} arms x {len(res['seeds'])} seeds ({', '.join(map(str, res['seeds']))}) · each "
           f"{b['steps']} steps x {b['prompts_per_step']} prompts · evaluated by {ev['judge']} on {ev['n']} eval "
           f"prompts ({ev['sampling']}) · {res['method']} · {res.get('seconds_all_cells', 0) / 60:.1f} min of cells")

contrasts = pd.DataFrame(res["contrasts"])
st.markdown("#### Each contrast: a - b, mean over seeds (95% t CI)")
for panel in plots.replication_panels(contrasts):  # one per unit, each at the page's width
    common.chart(panel)
st.markdown("#### The table")
st.caption("measured = a - b, the per-seed paired difference, mean over seeds [95% t CI]; verdict against the "
           "paper's claim: reproduced (CI on the claimed side), not reproduced (CI on the other side), not resolved.")
table = contrasts.assign(measured=[f"{m:+.3f} {common.fmt_ci(lo, hi)}" if m is not None else "n/a"
                                   for m, lo, hi in zip(contrasts["mean"], contrasts["ci_low"], contrasts["ci_high"])])
st.dataframe(table[["contrast", "paper", "measured", "unit", "n", "claim", "verdict"]], hide_index=True)

st.markdown("#### Arms (each vs the initial policy, scored by gold)")
arms = pd.DataFrame([{"arm": a["label"], "run": a["run"], "objective": a["objective"],
                      **{k: a[k]["mean"] for k in ("gold_win", "gold_diff", "gold", "chars")},
                      "ci_low": a["gold_win"]["ci_low"], "ci_high": a["gold_win"]["ci_high"], "n": a["gold_win"]["n"]}
                     for a in res["arms"]])
common.chart(plots.winrate_chart(arms.rename(columns={"arm": "policy", "gold_win": "win_rate"}),
                                 title="Gold win rate vs the initial policy, mean over seeds (95% t CI)"))
st.dataframe(arms.round(3), hide_index=True)

st.markdown("#### Every cell (arm x seed)")
st.dataframe(pd.DataFrame(res["cells"]).drop(columns=["labels", "gold_win_ci"], errors="ignore").round(3), hide_index=True)
