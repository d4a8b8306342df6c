"""`harness overopt` end to end on a tiny random Llama (tests/tiny_llama.py): pairs labelled by the
simulated rater, the RLHF arm (reward model + RLOO with checkpoints), best-of-n, a stored `overopt`
result whose numbers follow from its own points, and a plot. The pipeline, not the model."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from harness.cli import main
from harness.evaluation import overopt as oo
from harness.store import Store
from tiny_llama import make_tiny_llama

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, embedded_path) -> str:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama", embedded_path)


def test_overopt_command_stores_a_curve_and_a_plot(tmp_path, tiny_model, capsys):
    home = tmp_path / "home"
    plot = tmp_path / "overopt.png"
    over = [f"base.model.name={tiny_model}", "base.train.steps=2", "base.train.batch_size=16", "base.train.lr=1e-3",
            "base.sampling.max_new_tokens=8", "reward_model.steps=1", "best_of_n.ns=[1,2,4]", "rl.steps=2",
            "rl.every=1", "rl.k=2", "rl.batch_size=2", "rl.lr=1e-2", "evaluation.prompts=3", "evaluation.samples=2",
            "evaluation.max_new_tokens=8", "seeds=[0,1]"]
    assert main(["--home", str(home), "overopt", str(REPO / "configs" / "overopt_cpu.yaml"), *over,
                 "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    (tmp_path.parent / "overopt_smoke_out.txt").write_text(out)
    assert "reward over-optimisation" in out and "best-of-n" in out and "RLOO" in out and "wall time" in out
    assert "n=4" in out and "step=2" in out

    store = Store(home)
    [stored] = store.results("overopt")
    res = stored["result"]
    rows = {(r["method"], r["x"]): r for r in res["rows"]}
    assert set(rows) == {("bon", 1), ("bon", 2), ("bon", 4), ("rloo", 0), ("rloo", 1), ("rloo", 2)}
    assert rows[("bon", 4)]["kl"] == pytest.approx(math.log(4) - 0.75)
    assert rows[("rloo", 0)]["kl"] == 0.0 and rows[("rloo", 2)]["kl"] > 0  # the policy moved
    # proxy is centred on the initial policy: best-of-1 is 0 in every seed, and best-of-n never lowers it
    assert rows[("bon", 1)]["proxy"] == pytest.approx(0.0, abs=1e-6)
    assert rows[("bon", 4)]["proxy"] >= rows[("bon", 2)]["proxy"] >= rows[("bon", 1)]["proxy"] - 1e-9
    # the rows are the seeds' points aggregated: recompute one
    pts = [p for p in res["points"] if p["method"] == "rloo" and p["x"] == 2]
    assert sorted(p["seed"] for p in pts) == [0, 1]
    assert rows[("rloo", 2)]["gold"] == pytest.approx(sum(p["gold"] for p in pts) / 2)
    assert rows[("rloo", 2)]["ci_method"] == oo.SEEDS_METHOD
    for p in res["points"]:
        assert len(p["gold_prompts"]) == 3 and all(0.0 <= g <= 2.0 for g in p["gold_prompts"])
    # every seed has its own reward model and RLOO run, done, checkpointed at steps 1 and 2
    for s in res["seeds"]:
        assert store.get_run(s["rm_run"])["algo"] == "reward_model" and store.get_run(s["rl_run"])["algo"] == "rlhf"
        assert store.get_run(s["rl_run"])["status"] == "done"
        assert sorted(p.name for p in store.checkpoints_dir(s["rl_run"]).glob("step-*")) == ["step-1", "step-2"]
    assert set(res["bends"]) == {"bon", "rloo"} and res["machine"]["cores"] >= 1
    assert plot.exists() and plot.read_bytes()[:4] == b"\x89PNG"

    # a second call under the same config reuses the stored seeds: no new run, the same numbers
    n_runs = len(store.list_runs())
    assert main(["--home", str(home), "overopt", str(REPO / "configs" / "overopt_cpu.yaml"), *over[:-1], "seeds=[1]"]) == 0
    assert "seed 1: reused" in capsys.readouterr().out and len(store.list_runs()) == n_runs
    again = store.results("overopt")[-1]["result"]
    assert [p for p in again["points"]] == [p for p in res["points"] if p["seed"] == 1]
    assert again["rows"][0]["ci_method"] == oo.PROMPTS_METHOD  # one seed: bootstrap over prompts


def test_overopt_config_errors_name_the_key(tmp_path):
    from harness.config import ConfigError
    from harness.pipelines.overopt import load_overopt_config

    cfg = REPO / "configs" / "overopt_cpu.yaml"
    load_overopt_config(cfg, [])  # the shipped config is valid
    with pytest.raises(ConfigError, match=r"overopt_cpu.yaml:best_of_n.ns: increasing"):
        load_overopt_config(cfg, ["best_of_n.ns=[4,2]"])
    with pytest.raises(ConfigError, match=r"rl.every"):
        load_overopt_config(cfg, ["rl.every=9"])
    with pytest.raises(ConfigError, match=r"evaluation.samples: 32 > max"):
        load_overopt_config(cfg, ["evaluation.samples=32"])
    with pytest.raises(ConfigError, match=r"unknown key.*best_of_n.m"):
        load_overopt_config(cfg, ["best_of_n.m=3"])
    with pytest.raises(ConfigError, match=r"base.train.stepz"):
        load_overopt_config(cfg, ["base.train.stepz=3"])
