"""Leaderboard: win rates with CI bars (from `harness eval`) and Bradley–Terry ratings with CIs and
the win-rate matrix (from `harness leaderboard`), filtered by task, judge and baseline."""
import pandas as pd
import streamlit as st

from dashboards import common
from dashboards import results as R
from harness import plots

common.header("Leaderboard")
wr = R.winrates(common.results("winrate"))
boards = common.results("leaderboard")
if wr.empty and not boards:
    common.empty("win rates or leaderboards", "harness eval ...` or `harness leaderboard ...")
    st.stop()

everything = pd.concat([wr[["task", "judge", "baseline"]] if not wr.empty else pd.DataFrame(),
                        pd.DataFrame([R.leaderboard_meta(b) for b in boards])], ignore_index=True)
c1, c2, c3 = st.columns(3)
with c1:
    task = common.pick("Task / dataset", sorted(everything["task"].dropna().unique()), key="lb_task")
with c2:
    judge = common.pick("Judge", sorted(everything["judge"].dropna().unique()), key="lb_judge")
with c3:
    baseline = common.pick("Baseline", sorted(everything["baseline"].dropna().unique()), key="lb_baseline")


def keep(task_v, judge_v, baseline_v) -> bool:
    return ((task is None or task_v == task) and (judge is None or judge_v == judge)
            and (baseline is None or baseline_v == baseline))


st.header("Win rate vs baseline")
if wr.empty:
    st.info("No stored win rates (`harness eval`).")
else:
    shown = wr[[keep(t, j, b) for t, j, b in zip(wr["task"], wr["judge"], wr["baseline"])]]
    if shown.empty:
        st.info("No win rate matches these filters.")
    else:
        table = shown.assign(ci95=[common.fmt_ci(lo, hi) for lo, hi in zip(shown["ci_low"], shown["ci_high"])])
        cols = ["policy", "baseline", "judge", "task", "win_rate", "ci95", "n", "ties", "lc_win_rate"]
        st.dataframe(table[[c for c in cols if c in table.columns]].dropna(axis=1, how="all"), hide_index=True,
                     column_config={"win_rate": st.column_config.NumberColumn(format="%.3f"),
                                    "lc_win_rate": st.column_config.NumberColumn("LC win rate", format="%.3f")})
        # one row per result: name a policy by its baseline and judge where it appears more than once
        dup = shown["policy"].duplicated(keep=False)
        rows = shown.assign(policy=[f"{p} vs {b} · {j}" if d else p for p, b, j, d in
                                    zip(shown["policy"], shown["baseline"], shown["judge"], dup)])
        common.chart(plots.winrate_chart(rows))

st.header("Bradley–Terry ratings")
boards = [b for b in boards if keep(*R.leaderboard_meta(b).values())]
if not boards:
    st.info("No stored Bradley–Terry leaderboard matches (`harness leaderboard`).")
    st.stop()
names = {f"#{b['result_id']} {b.get('name') or ''} · judges {R.leaderboard_meta(b)['judge'] or '?'}"
         f" · {b['result'].get('n_battles', '?')} battles": b for b in reversed(boards)}
board = names[st.selectbox("Leaderboard result (newest first)", list(names), key="lb_result")]
ratings, matrix = R.leaderboard(board)
if ratings.empty:
    st.warning("This leaderboard result holds no ratings.")
else:
    k1, k2 = st.columns(2)
    k1.metric("Models", len(ratings))
    k2.metric("Battles", board["result"].get("n_battles", "?"))
    st.dataframe(ratings.assign(ci95=[common.fmt_ci(lo, hi) for lo, hi in zip(ratings["ci_low"], ratings["ci_high"])])
                 .drop(columns=["ci_low", "ci_high"]).dropna(axis=1, how="all"),
                 hide_index=True, column_config={"rating": st.column_config.NumberColumn(format="%.1f")})
    common.chart(plots.bradley_terry_chart(ratings))
if not matrix.empty:
    st.subheader("Win-rate matrix")
    common.chart(plots.winrate_matrix_chart(matrix))
