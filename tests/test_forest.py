"""Forest plots (harness/plots.py forest_chart) of the demo's and the study's results: one row per
arm x judge, whiskers = the CI, the reference line at 0.5 (win rates) or 0 (differences); the rows
the dashboard builds from stored summaries (dashboards/results.py); and the Overview and Replication
pages drawing them above their tables (streamlit AppTest on a store holding one demo_summary and one
study_summary written here)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from dashboards import results
from harness import plots
from harness.evaluation import replication as rep

APP = Path(__file__).resolve().parents[1] / "dashboards" / "app.py"


def _forest_df() -> pd.DataFrame:
    rows = []
    for i, arm in enumerate(("offline_human", "oaif_human", "offline_ai")):
        for j, judge in enumerate(("gold", "rule:shorter")):
            est = 0.4 + 0.1 * i + 0.05 * j
            rows.append({"label": arm, "group": judge, "estimate": est, "lo": est - 0.07, "hi": est + 0.09, "n": 48})
    return pd.DataFrame(rows)


def _layers(chart) -> tuple[list[dict], list[dict]]:
    spec = chart.to_dict()
    [data] = spec["datasets"].values()
    return spec["layer"], data


@pytest.mark.parametrize("reference", [0.5, 0.0])
def test_forest_chart_one_row_per_arm_and_judge_whiskers_are_the_ci(reference):
    df = _forest_df()
    layers, data = _layers(plots.forest_chart(df, reference, "t"))
    assert len(data) == len(df) == 6 and len({d["row"] for d in data}) == 6
    for d, (_, r) in zip(data, df.iterrows()):
        assert (d["estimate"], d["lo"], d["hi"]) == (r["estimate"], r["lo"], r["hi"])
    ref, whiskers, points = layers
    assert ref["mark"]["type"] == "rule" and ref["encoding"]["x"]["datum"] == reference
    assert whiskers["mark"]["type"] == "rule" and whiskers["encoding"]["x"]["field"] == "lo"
    assert whiskers["encoding"]["x2"]["field"] == "hi" and whiskers["encoding"]["y"]["field"] == "row"
    assert points["encoding"]["x"]["field"] == "estimate" and points["encoding"]["color"]["field"] == "group"
    # rows grouped by arm, each arm's judges together
    order = whiskers["encoding"]["y"]["sort"]
    assert [o.split("  ·  ")[0] for o in order] == ["oaif_human"] * 2 + ["offline_ai"] * 2 + ["offline_human"] * 2


def test_forest_chart_refuses_a_missing_column_and_duplicate_rows():
    with pytest.raises(plots.PlotError, match=r"forest_chart: the table lacks column\(s\) \['lo'\]"):
        plots.forest_chart(_forest_df().drop(columns=["lo"]), 0.5)
    df = _forest_df()
    with pytest.raises(plots.PlotError, match="more than one row for"):
        plots.forest_chart(pd.concat([df, df.iloc[:1]]), 0.5)


def demo_summary() -> dict:
    rows = [{"arm": a, "judge": j, "n": 48, "win_rate": w, "ci_low": w - 0.06, "ci_high": w + 0.06, "run_id": f"r-{a}",
             **({"gold_diff (ci95)": f"{w - 0.5:+.3f} [{w - 0.6:+.3f}, {w - 0.4:+.3f}]", "gold_diff_ci": [w - 0.6, w - 0.4]}
                if j == "gold" else {})}
            for a, w0 in (("offline_human", 0.575), ("oaif_human", 0.5)) for j, w in (("gold", w0), ("rule:shorter", w0 - 0.1))]
    h2h = [{"arm_a": "offline_human", "arm_b": "oaif_human", "judge": j, "n": 48, "win_rate_a": 0.56, "ci_low": 0.5,
            "ci_high": 0.62} for j in ("gold", "rule:shorter")]
    return {"group": "demo-x", "question": "Does online beat offline?", "task": "verifiable",
            "design": [{"arm": "offline_human"}, {"arm": "oaif_human"}], "budget": {"steps": 4, "prompts_per_step": 4},
            "eval_n": 48, "eval_judges": ["gold", "rule:shorter"], "ci_method": "bootstrap", "seconds": 60,
            "findings": ["a finding"], "rows": rows, "head_to_head": h2h, "sources": [], "eval_judges_vs_gold": [],
            "judge_cards": {}}


def study_summary() -> dict:
    per_arm = {"oaif_dpo": {0: {"gold_win": 0.55, "gold_diff": 0.05, "gold": 1.1, "chars": 90.0},
                            1: {"gold_win": 0.60, "gold_diff": 0.08, "gold": 1.2, "chars": 80.0},
                            2: {"gold_win": 0.52, "gold_diff": 0.02, "gold": 1.0, "chars": 85.0}},
               "offline_dpo": {0: {"gold_win": 0.58, "gold_diff": 0.06, "gold": 1.1, "chars": 95.0},
                               1: {"gold_win": 0.50, "gold_diff": -0.01, "gold": 1.0, "chars": 99.0},
                               2: {"gold_win": 0.57, "gold_diff": 0.04, "gold": 1.1, "chars": 90.0}}}
    metrics = ["gold_win", "gold_diff", "gold", "chars"]
    arms = [{"arm": a, "label": a, "run": a.replace("_dpo", "_gold"), "objective": "dpo", **rep.arm_cell(per_arm[a], metrics)}
            for a in per_arm]
    contrasts = [rep.contrast_cell("online vs offline, DPO", "oaif_dpo", "offline_dpo", "gold_diff", "> 0", per_arm,
                                   unit="gold points (0-2)"),
                 rep.contrast_cell("length", "oaif_dpo", "offline_dpo", "chars", "< 0", per_arm, unit="characters")]
    cells = [{"arm": a, "seed": s, **v} for a, d in per_arm.items() for s, v in d.items()]
    return {"group": "study", "name": "study", "question": "Online vs offline?", "seeds": [0, 1, 2],
            "budget": {"steps": 6, "prompts_per_step": 4}, "eval": {"judge": "gold", "n": 48, "sampling": "greedy",
                                                                    "max_new_tokens": 48},
            "cells": cells, "arms": arms, "contrasts": contrasts, "method": rep.T_METHOD, "seconds_all_cells": 600}


def test_forest_rows_from_stored_summaries():
    wins, diffs = results.demo_forest(demo_summary())
    assert len(wins) == 2 * 2 + 2 and set(wins["group"]) == {"gold", "rule:shorter"}  # arms x judges + h2h x judges
    assert wins.iloc[0][["label", "estimate", "lo", "hi"]].tolist() == ["offline_human vs initial", 0.575,
                                                                        pytest.approx(0.515), pytest.approx(0.635)]
    assert list(diffs["label"]) == ["offline_human vs initial", "oaif_human vs initial"]
    assert diffs.iloc[0][["estimate", "lo", "hi"]].tolist() == pytest.approx([0.075, -0.025, 0.175])
    arm_wins, arm_diffs, contrasts = results.study_forest(study_summary())
    s = study_summary()
    assert list(arm_wins["estimate"]) == pytest.approx([a["gold_win"]["mean"] for a in s["arms"]])
    assert list(arm_diffs["lo"]) == pytest.approx([a["gold_diff"]["ci_low"] for a in s["arms"]])
    assert list(contrasts["unit"]) == ["gold points (0-2)", "characters"]


def _chart_data(at, i: int) -> pd.DataFrame:
    proto = at.get("vega_lite_chart")[i].proto
    return pd.concat([pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in proto.datasets], ignore_index=True)


def _page_order(node) -> list[str]:
    """The main area's charts ('chart') and tables ('table') in the order the page shows them."""
    out = []
    for k in sorted(getattr(node, "children", {})):
        child = node.children[k]
        kind = getattr(child, "type", "")
        if kind in ("arrow_vega_lite_chart", "vega_lite_chart"):
            out.append("chart")
        elif kind in ("arrow_data_frame", "dataframe"):
            out.append("table")
        else:
            out += _page_order(child)
    return out


def test_overview_and_replication_pages_draw_forest_plots_above_the_tables(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from harness.store import Store

    store = Store(tmp_path)
    store.add_result("demo_summary", demo_summary(), name="demo-x")
    store.add_result("study_summary", study_summary(), name="study", judge="gold", baseline="initial")
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    wins, diffs = _chart_data(at, 0), _chart_data(at, 1)
    assert len(wins) == 6 and {"estimate", "lo", "hi", "row"} <= set(wins.columns)
    assert list(diffs["label"]) == ["offline_human vs initial", "oaif_human vs initial"]
    assert len(at.dataframe) >= 2
    assert _page_order(at.main)[:3] == ["chart", "chart", "table"]  # the forest plots above every table

    at.switch_page("views/replication.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Replication"
    charts = at.get("vega_lite_chart")
    assert len(charts) == 2 + 2  # arms' win rate and difference, one contrast panel per unit
    assert _page_order(at.main) == ["chart"] * 4 + ["table"] * 3
    assert list(_chart_data(at, 0)["label"]) == ["oaif_dpo", "offline_dpo"]
    assert list(_chart_data(at, 2)["label"]) == ["online vs offline, DPO"]
    table = at.dataframe[0].value
    c = study_summary()["contrasts"][0]
    assert table["mde"].iloc[0] == pytest.approx(c["mde"]) and table["power"].iloc[0] == c["power"]
    assert c["power"].startswith(("unpowered", "powered null"))
