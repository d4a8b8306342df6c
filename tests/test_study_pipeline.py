"""`harness replicate` (`make study`) end to end on a tiny random Llama (tests/tiny_llama.py): every
arm of configs/study_cpu.yaml (offline / OAIF x DPO, IPO, SLiC; RLAIF; the 'shorter' instruction;
DPO, rDPO, cDPO on 30% flips) for two seeds, one step each: the pipeline, not the model. Checks the
table against the stored cells (scipy's t interval), the verdict words, the files written, that a
second call reuses every cell, that an interrupted study resumes where it stopped, and that a
changed config does not reuse old cells. The validity card of the rule annotator is stubbed
(tests/card_stub.py: PandaLM/LLMBar labelling is not what this tests)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from scipy import stats

from card_stub import install_card_stub
from harness.cli import main
from harness.pipelines import study as study_mod
from harness.store import Store
from tiny_llama import make_tiny_llama

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, embedded_path) -> str:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama", embedded_path)


def small_config(tmp_path: Path, tiny_model: str, **extra) -> Path:
    cfg = yaml.safe_load((REPO / "configs" / "study_cpu.yaml").read_text())
    cfg["seeds"] = [0, 1]
    cfg["base"]["model"]["name"] = tiny_model
    cfg["base"]["train"].update(steps=1, batch_size=4, checkpoint_every=0, lr=5e-2)
    cfg["base"]["sampling"]["max_new_tokens"] = 8
    cfg["reward_model"]["steps"] = 1
    cfg["evaluation"] = {"n": 4, "max_new_tokens": 8}
    # a random tiny model's answers are all degenerate, gold ties on every pair: sources that decide them
    cfg["sources"]["gold"]["annotator"] = "rule:longer"
    cfg["sources"]["flip30"]["annotator"] = "sim-rater-1"
    cfg.update(extra)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_study_table_resume_and_outputs(tmp_path, tiny_model, capsys, monkeypatch):
    install_card_stub(monkeypatch)
    home, config = tmp_path / "home", small_config(tmp_path, tiny_model)
    arms = list(yaml.safe_load(config.read_text())["arms"])
    real = study_mod.run_cell
    calls, crashed = [], []

    def interrupted(*a, **k):  # the 5th cell dies once (a crash mid-study)
        calls.append(a[2])
        if len(calls) == 5 and not crashed:
            crashed.append(a[2])
            raise OSError("killed mid-study")
        return real(*a, **k)

    monkeypatch.setattr(study_mod, "run_cell", interrupted)
    try:
        rc = main(["--home", str(home), "replicate", str(config)])
    except OSError:
        rc = None
    assert rc != 0
    store = Store(home)
    assert len(store.results("study_cell")) == 4
    calls.clear()
    assert main(["--home", str(home), "replicate", str(config)]) == 0
    assert len(calls) == 2 * len(arms) - 4  # only the cells not done yet
    out = capsys.readouterr().out
    assert "4 (arm, seed) cells already done" in out and "| online vs offline, DPO |" in out

    [summary] = [r["result"] for r in store.results("study_summary")]
    cells = {(c["arm"], c["seed"]): c for c in summary["cells"]}
    assert set(cells) == {(a, s) for a in arms for s in (0, 1)}
    for c in cells.values():
        assert c["n"] == 4 and 0 <= c["gold_win"] <= 1 and c["chars"] > 0 and c["arm_hash"]
        run = store.get_run(c["run_id"])
        assert run["status"] == "done" and run["config"]["train"]["seed"] == c["seed"]
        # a finished arm keeps its weights, not its optimizer state
        ckpt = store.latest_checkpoint(c["run_id"])
        assert (ckpt / "model.safetensors").exists() or any(ckpt.glob("*.safetensors"))
        assert not (ckpt / "optimizer.safetensors").exists()
    # each arm trains with its own objective and source
    loss = {a: store.get_run(cells[(a, 0)]["run_id"])["config"]["loss"] for a in arms if a != "rlaif"}
    assert loss["offline_ipo"]["kind"] == "ipo" and loss["oaif_slic"]["kind"] == "slic"
    assert loss["flip30_rdpo"] == {**loss["flip30_rdpo"], "kind": "rdpo", "flip_rate": 0.3}
    assert loss["flip30_cdpo"]["kind"] == "cdpo" and loss["flip30_cdpo"]["label_smoothing"] == 0.3
    judge = store.get_run(cells[("oaif_short", 0)]["run_id"])["config"]["judge"]
    assert judge["name"] == "rule:instructed:gold:verifiable" and judge["instruction"] == "shorter"
    assert store.get_run(cells[("rlaif", 1)]["run_id"])["algo"] == "rlhf"
    # one sampled-once pairs run per seed, labelled by gold and by the 30%-flip rater
    pairs_runs = [r for r in store.list_runs() if r["algo"] == "sample_pairs"]
    assert len(pairs_runs) == 2

    # the table: per arm the t interval over seeds, per contrast the paired per-seed difference
    arm_rows = {a["arm"]: a for a in summary["arms"]}
    vals = [cells[("oaif_dpo", s)]["gold_diff"] for s in (0, 1)]
    ci = stats.ttest_1samp(vals, 0.0).confidence_interval(0.95)
    got = arm_rows["oaif_dpo"]["gold_diff"]
    if vals[0] != vals[1]:
        assert (got["ci_low"], got["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert got["n"] == 2 and got["mean"] == pytest.approx(sum(vals) / 2)
    by_name = {c["contrast"]: c for c in summary["contrasts"]}
    length = by_name["instruction 'shorter': length"]
    assert {int(k): v for k, v in length["per_seed"].items()} == pytest.approx({s: cells[("oaif_short", s)]["chars"] - cells[("oaif_dpo", s)]["chars"]
                                                for s in (0, 1)}, abs=1e-9)
    assert length["unit"] == "characters" and length["claim"] == "oaif_short - oaif_dpo < 0"
    assert all(c["verdict"] in ("reproduced", "not reproduced", "not resolved") for c in summary["contrasts"])

    # written as markdown and JSON
    md = (home / "reports" / "study" / "study.md").read_text()
    assert md.count("\n| ") >= len(summary["contrasts"]) + len(arms) and "**not resolved**" in md or "**reproduced**" in md
    assert json.loads((home / "reports" / "study" / "study.json").read_text())["group"] == "study"

    # a second call reuses every cell; a changed config reuses none of its changed arms
    calls.clear()
    assert main(["--home", str(home), "replicate", str(config)]) == 0
    assert calls == []
    assert main(["--home", str(home), "replicate", str(config), "evaluation.n=3"]) == 0
    assert len(calls) == 2 * len(arms)
    assert "stored cells of study were computed under another config: not reused" in capsys.readouterr().out

    # the dashboard's Replication page draws the newest study: the chart, the table with its verdicts
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("HARNESS_HOME", str(home))
    at = AppTest.from_file(str(REPO / "dashboards" / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("views/replication.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Replication"
    newest = store.results("study_summary")[-1]["result"]
    frames = [d.value for d in at.dataframe]
    assert list(frames[0]["contrast"]) == [c["contrast"] for c in newest["contrasts"]]
    assert list(frames[0]["verdict"]) == [c["verdict"] for c in newest["contrasts"]]
    assert len(frames[2]) == 2 * len(arms)
    units = {c["unit"] for c in newest["contrasts"]}
    assert len(units) == 2 and len(at.get("vega_lite_chart")) == len(units) + 2  # a forest per unit + the arms (win rate, difference)
    assert list(frames[0]["power"]) == [c["power"] for c in newest["contrasts"]]


def test_a_contrast_naming_an_unknown_arm_is_refused(tmp_path, tiny_model, capsys):
    config = small_config(tmp_path, tiny_model, contrasts=[{"name": "x", "a": "oaif_dpo", "b": "offline_dpx"}])
    assert main(["--home", str(tmp_path / "h"), "replicate", str(config)]) == 2
    err = capsys.readouterr().err
    assert "study.yaml:contrasts[0]: arm 'offline_dpx' is not one of the study's arms" in err
