"""Power of the study's cells (harness/evaluation/power.py): the MDE and the seeds a target effect
needs, against statsmodels' TTestPower (paired: the per-seed differences) and TTestIndPower (two
independent arms); the labels of unresolved replication cells; the pilot sizing on hand-made
numbers; and `harness replicate --pilot` end to end on a STORED FAKE set of study_cell results
(no training: the study runner finds every pilot cell done and reads it back; tests/test_study_pipeline.py
covers the runner itself on a tiny model)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from statsmodels.stats.power import TTestIndPower, TTestPower

from harness.cli import main
from harness.evaluation import power
from harness.evaluation import replication as rep

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("n", [2, 3, 4, 5, 8, 10, 30])
def test_mde_matches_statsmodels_paired_and_two_sample(n):
    d = TTestPower().solve_power(nobs=n, alpha=0.05, power=0.8)
    assert power.detectable_d(n) == pytest.approx(d, rel=1e-5)
    assert power.mde(0.04, n) == pytest.approx(d * 0.04, rel=1e-5)
    d_ind = TTestIndPower().solve_power(nobs1=n, alpha=0.05, power=0.8)
    assert power.detectable_d(n, two_sample=True) == pytest.approx(d_ind, rel=1e-5)
    # the power function itself, at an arbitrary effect
    assert power.power_t(0.9, n) == pytest.approx(TTestPower().power(effect_size=0.9, nobs=n, alpha=0.05), rel=1e-8)


@pytest.mark.parametrize("target,sd", [(0.1, 0.05), (0.1, 0.2), (0.05, 0.3), (0.1, 0.03), (1.0, 0.7)])
def test_seeds_needed_is_statsmodels_nobs_rounded_up(target, sd):
    nobs = TTestPower().solve_power(effect_size=target / sd, alpha=0.05, power=0.8)
    n = power.seeds_needed(target, sd)
    assert n == max(2, math.ceil(nobs - 1e-9))
    assert power.power_t(target / sd, n) >= 0.8 and (n == 2 or power.power_t(target / sd, n - 1) < 0.8)
    nobs_ind = TTestIndPower().solve_power(effect_size=target / sd, alpha=0.05, power=0.8)
    assert power.seeds_needed(target, sd, two_sample=True) == max(2, math.ceil(nobs_ind - 1e-9))


def test_seeds_needed_edges_and_bad_input():
    assert power.seeds_needed(0.1, 0.0) == 2
    assert power.seeds_needed(0.001, 10.0) is None  # d = 1e-4 would need ~8e8 seeds
    with pytest.raises(ValueError, match="target effect must be > 0"):
        power.seeds_needed(0.0, 0.1)
    with pytest.raises(ValueError, match="at least 2 seeds"):
        power.detectable_d(1)
    assert power.mde(None, 3) is None and power.mde(0.1, 1) is None


def test_unresolved_cells_are_labelled_powered_or_unpowered():
    d3 = TTestPower().solve_power(nobs=3, alpha=0.05, power=0.8)
    # tight seeds around 0: resolved nothing, but could have seen 0.1 gold points
    tight = {"a": {0: {"gold_diff": 0.010}, 1: {"gold_diff": 0.000}, 2: {"gold_diff": 0.005}},
             "b": {0: {"gold_diff": 0.0}, 1: {"gold_diff": 0.0}, 2: {"gold_diff": 0.0}}}
    cell = rep.contrast_cell("x", "a", "b", "gold_diff", "> 0", tight, unit="gold points")
    sd = np.std([0.010, 0.000, 0.005], ddof=1)
    assert cell["verdict"] == rep.NOT_RESOLVED and cell["mde"] == pytest.approx(d3 * sd, rel=1e-5)
    assert cell["target"] == 0.1 and cell["power"] == f"powered null (no effect larger than {cell['mde']:.3g} gold points)"
    # wide seeds: unpowered
    wide = {"a": {0: {"gold_diff": 0.3}, 1: {"gold_diff": -0.2}, 2: {"gold_diff": 0.1}}, "b": tight["b"]}
    cell = rep.contrast_cell("x", "a", "b", "gold_diff", "> 0", wide, unit="gold points")
    assert cell["mde"] > 0.1 and cell["power"] == f"unpowered (MDE {cell['mde']:.3g} gold points > target 0.1)"
    # a study's own target; a resolved cell keeps its verdict and gets no label
    assert rep.contrast_cell("x", "a", "b", "gold_diff", "> 0", wide, targets={"gold_diff": 5.0})["power"].startswith("powered null")
    up = {"a": {0: {"gold_win": 0.7}, 1: {"gold_win": 0.72}, 2: {"gold_win": 0.71}},
          "b": {0: {"gold_win": 0.5}, 1: {"gold_win": 0.5}, 2: {"gold_win": 0.5}}}
    cell = rep.contrast_cell("x", "a", "b", "gold_win", "> 0", up)
    assert cell["verdict"] == rep.REPRODUCED and cell["power"] == "" and cell["mde"] is not None
    # no target for length; one seed: no MDE
    assert "no target effect set" in rep.contrast_cell("x", "a", "b", "chars", "< 0",
                                                       {"a": {0: {"chars": 9}, 1: {"chars": 3}}, "b": {0: {"chars": 5}, 1: {"chars": 6}}})["power"]
    one = rep.contrast_cell("x", "a", "b", "gold_diff", "> 0", {"a": {0: {"gold_diff": 0.1}}, "b": {0: {"gold_diff": 0.0}}})
    assert one["mde"] is None and one["power"] == "unpowered (no MDE: 1 seed with a spread)"


def test_markdown_prints_each_cells_mde():
    per_arm = {"a": {0: {"gold_diff": 0.3}, 1: {"gold_diff": -0.2}, 2: {"gold_diff": 0.1}},
               "b": {0: {"gold_diff": 0.0}, 1: {"gold_diff": 0.0}, 2: {"gold_diff": 0.0}}}
    c = rep.contrast_cell("a vs b", "a", "b", "gold_diff", "> 0", per_arm, unit="gold points")
    fig = {"mean": 0.1, "ci_low": 0.0, "ci_high": 0.2, "n": 3}
    summary = {"name": "s", "group": "s", "seeds": [0, 1, 2], "method": rep.T_METHOD, "contrasts": [c],
               "budget": {"steps": 1, "prompts_per_step": 2}, "eval": {"n": 4, "sampling": "greedy", "max_new_tokens": 8},
               "arms": [{"label": "a", "run": "oaif_gold", "objective": "dpo", **{k: fig for k in ("gold_win", "gold_diff", "gold", "chars")}}]}
    row = next(line for line in rep.markdown(summary).splitlines() if line.startswith("| a vs b"))
    assert f"**not resolved** — unpowered (MDE {c['mde']:.3g} gold points > target 0.1) | {c['mde']:.3f} |" in row
    # an old summary without the fields gets them computed from its sd and n
    old = {k: v for k, v in c.items() if k not in ("mde", "target", "power")}
    assert f"| {c['mde']:.3f} |" in rep.markdown({**summary, "contrasts": [old]})


def test_size_from_pilot_on_hand_made_numbers():
    contrasts = [{"contrast": "c1", "a": "x", "b": "y", "metric": "gold_diff", "sd": 0.2, "n": 3, "unit": "gold points"},
                 {"contrast": "c2", "a": "x", "b": "z", "metric": "gold_win", "sd": 0.05, "n": 3},
                 {"contrast": "len", "a": "z", "b": "y", "metric": "chars", "sd": 20.0, "n": 3},
                 {"contrast": "c3", "a": "y", "b": "z", "metric": "gold_diff", "sd": None, "n": 1}]
    seconds = {"x": {"train": 30.0, "eval": 10.0}, "y": {"train": 20.0, "eval": 10.0}, "z": {"train": 10.0, "eval": 10.0}}
    out = power.size_from_pilot(contrasts, seconds, train_scale=3.0)
    r1, r2, r3, r4 = out["rows"]
    n1 = math.ceil(TTestPower().solve_power(effect_size=0.1 / 0.2, alpha=0.05, power=0.8))  # 34
    n2 = math.ceil(TTestPower().solve_power(effect_size=0.1 / 0.05, alpha=0.05, power=0.8))  # 5
    assert (r1["seeds"], r2["seeds"]) == (n1, n2)
    # a cell's time: its training scaled by 3 (the study's steps x prompts over the pilot's), evaluation not
    assert r1["seconds"] == pytest.approx(n1 * ((30 * 3 + 10) + (20 * 3 + 10)))
    assert r2["seconds"] == pytest.approx(n2 * ((30 * 3 + 10) + (10 * 3 + 10)))
    assert r3["seeds"] is None and r3["note"] == "no target effect for this metric"
    assert r4["seeds"] is None and "it needs 2" in r4["note"]
    assert out["seeds"] == n1 and out["seconds"] == pytest.approx(n1 * (100 + 70 + 40))
    with pytest.raises(ValueError, match="no timed cell of arm 'x'"):
        power.size_from_pilot(contrasts[:1], {"y": seconds["y"]})
    cells = [{"arm": "x", "train_seconds": 30, "seconds": 45}, {"arm": "x", "train_seconds": 10, "seconds": 15}]
    assert power.pilot_arm_seconds(cells) == {"x": {"train": 20.0, "eval": 10.0}}


def test_replicate_pilot_reads_a_stored_pilot_and_sizes_the_study(tmp_path, capsys):
    """A fake pilot stored as study_cell results under the pilot's own config hash: `--pilot` finds
    every cell done (nothing trains), then prints and writes the sizing."""
    from harness.pipelines import study as study_mod
    from harness.store import Store

    config = REPO / "configs" / "study_cpu.yaml"
    extra = ["seeds=[0, 1, 2]", "base.train.steps=2"]
    study, base = study_mod.load_study_config(config, extra)
    store = Store(tmp_path)
    rng = np.random.default_rng(0)
    offsets = {name: rng.normal(0, 0.05, 3) for name in study.arms}
    for name in study.arms:
        h = study_mod.arm_hash(study, base, name)
        for s in (0, 1, 2):
            cell = {"group": "study-pilot", "arm": name, "seed": s, "run": study.arms[name].arm, "run_id": f"r-{name}-{s}",
                    "arm_hash": h, "train_seconds": 12.0, "seconds": 20.0, "gold_win": 0.5 + offsets[name][s],
                    "gold_diff": offsets[name][s], "gold": 1.0 + offsets[name][s], "chars": 100.0 + 10 * s, "n": 48}
            store.add_result("study_cell", cell, name=f"study-pilot:{name}:s{s}", judge="gold", baseline="initial")
    assert main(["--home", str(tmp_path), "replicate", str(config), "--pilot"]) == 0
    out = capsys.readouterr().out
    assert f"{3 * len(study.arms)} (arm, seed) cells already done, 0 to go" in out
    sizing = json.loads((tmp_path / "reports" / "study-pilot" / "sizing.json").read_text())
    full = study_mod.load_study_config(config, [])[1]
    steps, bs = full["train"]["steps"], full["train"]["batch_size"]
    assert sizing["train_scale"] == pytest.approx(steps / 2) and sizing["full_steps_x_prompts"] == steps * bs
    row = {r["contrast"]: r for r in sizing["rows"]}["online vs offline, DPO"]
    sd = np.std(offsets["oaif_dpo"] - offsets["offline_dpo"], ddof=1)
    want = math.ceil(TTestPower().solve_power(effect_size=0.1 / sd, alpha=0.05, power=0.8) - 1e-9)
    assert row["sd"] == pytest.approx(sd) and row["seeds"] == max(2, want)
    assert row["seconds"] == pytest.approx(row["seeds"] * 2 * (12.0 * steps / 2 + 8.0))
    assert sizing["seconds"] == pytest.approx(sizing["seeds"] * len(study.arms) * (12.0 * steps / 2 + 8.0))
    assert "online vs offline, DPO" in out and "seeds for 80% power" in out


def test_target_flag_parses_and_refuses_bad_input():
    from harness.commands.replicate import parse_targets
    from harness.config import ConfigError

    assert parse_targets(["gold_diff=0.05"]) == {**power.DEFAULT_TARGETS, "gold_diff": 0.05}
    with pytest.raises(ConfigError, match="--target 'gold_diff': use METRIC=EFFECT"):
        parse_targets(["gold_diff"])
    with pytest.raises(ConfigError, match="must be > 0"):
        parse_targets(["gold_win=-1"])
