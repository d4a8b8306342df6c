"""harness.plots: each chart encodes the documented columns, rejects tables that lack them, and
save_chart writes HTML / JSON / PNG."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from harness import plots


def _spec(chart) -> str:
    return json.dumps(chart.to_dict())


def _rows(chart) -> list[dict]:
    """All data rows embedded in a chart spec."""
    return [r for rows in chart.to_dict().get("datasets", {}).values() for r in rows]


WR = pd.DataFrame({"policy": ["dpo", "oaif", "sft"], "win_rate": [0.62, 0.71, 0.5],
                   "ci_low": [0.55, 0.64, 0.42], "ci_high": [0.69, 0.78, 0.58], "n": [128, 128, 128]})


def test_winrate_chart_has_points_ci_bars_and_the_half_line():
    spec = plots.winrate_chart(WR).to_dict()
    marks = [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in spec["layer"]]
    assert marks == ["rule", "point", "rule"]  # CI bar, point estimate, 0.5 reference
    ci = spec["layer"][0]["encoding"]
    assert ci["x"]["field"] == "ci_low" and ci["x2"]["field"] == "ci_high"
    # rows sorted best first
    assert spec["layer"][1]["encoding"]["y"]["sort"] == ["oaif", "dpo", "sft"]
    assert {r["policy"]: r["win_rate"] for r in _rows(plots.winrate_chart(WR)) if "policy" in r} == {"dpo": 0.62, "oaif": 0.71, "sft": 0.5}


def test_charts_without_ci_columns_draw_points_only():
    spec = plots.bradley_terry_chart(pd.DataFrame({"model": ["a", "b"], "rating": [1010.0, 990.0]})).to_dict()
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["point"]


def test_missing_columns_are_a_clear_error():
    with pytest.raises(plots.PlotError, match=r"winrate_chart: the table lacks column\(s\) \['win_rate'\]"):
        plots.winrate_chart(pd.DataFrame({"policy": ["a"]}))
    with pytest.raises(plots.PlotError, match="none of the requested metrics"):
        plots.training_curves(pd.DataFrame({"run_id": ["r"], "step": [1]}), ["loss"])


def test_agreement_heatmap_cells_and_kappa_domain():
    df = pd.DataFrame([{"annotator_a": a, "annotator_b": b, "agreement": 0.7, "kappa": -0.2}
                       for a in ("h1", "h2", "gpt") for b in ("h1", "h2", "gpt") if a != b])
    assert len(_rows(plots.agreement_heatmap(df))) == 6
    assert '"domain": [-1, 1]' in _spec(plots.agreement_heatmap(df, value="kappa"))
    assert '"domain": [0, 1]' in _spec(plots.agreement_heatmap(df))


def test_bias_chart_facets_by_subset():
    df = pd.DataFrame([{"annotator": "gpt", "metric": m, "value": 0.6, "subset": s}
                       for m in ("P(prefers first shown)", "P(prefers longer)") for s in ("Natural", "Adversarial")])
    spec = plots.bias_chart(df).to_dict()
    assert spec["facet"]["column"]["field"] == "subset"
    one = plots.bias_chart(df[df["subset"] == "Natural"]).to_dict()
    assert "facet" not in one


def test_training_curves_overlay_runs_one_panel_per_metric():
    m = pd.DataFrame([{"run_id": r, "step": s, "loss": 1.0 / s, "kl_nats_per_seq": 0.1 * s, "other": 3}
                      for r in ("a", "b") for s in range(1, 6)])
    chart = plots.training_curves(m)
    spec = chart.to_dict()
    assert spec["facet"]["field"] == "metric" and spec["facet"]["sort"] == ["loss", "kl_nats_per_seq"]
    rows = _rows(chart)
    assert len(rows) == 2 * 5 * 2 and {r["run_id"] for r in rows} == {"a", "b"}


def test_replication_panels_one_per_unit():
    df = pd.DataFrame({"contrast": ["online vs offline", "shorter: length", "shorter: quality"],
                       "mean": [0.1, -27.0, -0.3], "ci_low": [-0.2, -78.0, -0.7], "ci_high": [0.4, 24.0, 0.1],
                       "unit": ["gold points", "characters", "gold points"], "verdict": ["not resolved"] * 3})
    panels = plots.replication_panels(df)
    assert len(panels) == 2 and [p.to_dict()["title"] for p in panels] == ["gold points", "characters"]
    shown = {v for p in panels for r in _rows(p) for v in r.values()}
    assert set(df["contrast"]) <= shown and {-27.0, 0.1, -0.3} <= shown


def test_controllability_charts():
    steps = pd.DataFrame({"instruction": ["short"] * 3 + ["long"] * 3, "step": [1, 2, 3] * 2,
                          "mean_length": [50, 45, 40, 50, 55, 60], "pref_shorter": [0.9] * 3 + [0.1] * 3})
    spec = plots.controllability_chart(steps).to_dict()
    assert len(spec["hconcat"]) == 2
    only_len = plots.controllability_chart(steps.drop(columns="pref_shorter")).to_dict()
    assert len(only_len["hconcat"]) == 1
    final = pd.DataFrame({"instruction": ["short", "long"], "mean_length": [40, 60], "win_rate": [0.4, 0.6]})
    assert {r["instruction"] for r in _rows(plots.winrate_vs_length_chart(final))} == {"short", "long"}


def test_save_chart_html_json_png(tmp_path):
    chart = plots.winrate_chart(WR)
    html = plots.save_chart(chart, tmp_path / "wr.html").read_text()
    assert "vega" in html and "oaif" in html
    spec = json.loads(plots.save_chart(chart, tmp_path / "sub" / "wr.json").read_text())
    assert "layer" in spec
    pytest.importorskip("vl_convert", reason="PNG export needs vl-convert-python")
    png = plots.save_chart(chart, tmp_path / "wr.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    with pytest.raises(plots.PlotError, match="unknown chart format"):
        plots.save_chart(chart, tmp_path / "wr.gif")


def test_long_runs_are_thinned_not_dropped():
    m = pd.DataFrame([{"run_id": r, "step": s, "loss": 1.0 / s, "kl_nats_per_seq": 0.01 * s}
                      for r in ("a", "b", "c") for s in range(1, 2001)])
    rows = _rows(plots.training_curves(m, max_points=300))
    assert len(rows) == 3 * 2 * 300  # under altair's 5000-row limit, which 12000 rows would break
    steps = sorted(r["step"] for r in rows if r["run_id"] == "a" and r["metric"] == "loss")
    assert steps[0] == 1 and steps[-1] == 2000
