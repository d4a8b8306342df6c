"""Config: YAML + dotted overrides into typed dataclasses; every error names the key (and file)."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import ConfigError, dump_config, load_config

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_yaml_and_overrides(tmp_path):
    p = write(tmp_path, "algo: dpo\ntrain:\n  steps: 7\n  lr: 1e-5\nloss:\n  beta: 1\n")
    cfg = load_config(p, ["train.batch_size=8", "loss.kind=ipo", "model.lora.target_modules=[q_proj, v_proj]",
                          "data.max_train=none", "model.name=HuggingFaceTB/SmolLM2-135M-Instruct"])
    assert cfg.train.steps == 7 and cfg.train.lr == 1e-5  # YAML reads 1e-5 as a string: coerced
    assert cfg.loss.beta == 1.0 and isinstance(cfg.loss.beta, float)
    assert cfg.train.batch_size == 8 and cfg.loss.kind == "ipo"
    assert cfg.model.lora.target_modules == ["q_proj", "v_proj"]
    assert cfg.data.max_train is None and cfg.model.name == "HuggingFaceTB/SmolLM2-135M-Instruct"
    again = load_config(write(tmp_path, dump_config(cfg)))
    assert again == cfg


@pytest.mark.parametrize("text, overrides, named", [
    ("train:\n  stepz: 3\n", [], "train.stepz"),
    ("", ["train.stepz=3"], "train.stepz"),
    ("", ["train.steps=abc"], "train.steps: expected int"),
    ("train:\n  steps: 2.5\n", [], "train.steps: expected int"),
    ("model:\n  lora:\n    enabled: yes please\n", [], "model.lora.enabled: expected bool"),
    ("loss: 3\n", [], "loss: expected a mapping"),
    ("", ["loss.kind=kto"], "loss.kind"),
    ("", ["loss.kind=sft"], "loss.kind: unknown loss 'sft'; known: dpo, ipo, slic, cdpo, rdpo, soft (algo: sft trains"),
    ("", ["algo=ppo"], "algo"),
    ("", ["train.batch_size=6", "train.grad_accum=4"], "train.grad_accum"),
    ("", ["data.padding_side=middle"], "data.padding_side"),
    ("", ["loss.flip_rate=0.5"], "loss.flip_rate"),
    ("", ["train.steps"], "expected key=value"),
    # the sections an algorithm owns are checked by its module, whichever algo runs
    ("", ["rl.method=pppo"], "rl.method: must be one of rloo, ppo, got 'pppo'"),
    ("", ["rl.k=1"], "rl.k: RLOO needs at least 2"),
    ("", ["rl.gamma=2"], "rl.gamma: must be in [0, 1]"),
    ("", ["oaif.tie_policy=drop"], "oaif.tie_policy: must be one of skip, soft"),
    ("", ["reward_model.labels=mean"], "reward_model.labels: must be one of hard, soft"),
    ("", ["algo=oaif", "oaif.tie_policy=soft", "loss.kind=dpo"], "oaif.tie_policy: soft keeps ties"),
])
def test_errors_name_the_key(tmp_path, text, overrides, named):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(p, overrides)
    assert named in str(e.value)


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    p = write(tmp_path, "train:\n  steps: [1\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(p) in str(e.value) and "line" in str(e.value)
    p = write(tmp_path, "- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(p)
    p = write(tmp_path, "trian:\n  steps: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(p) in str(e.value) and "trian" in str(e.value)


def test_yaml_is_read_safely(tmp_path):
    p = write(tmp_path, "name: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(p)


def test_shipped_configs_validate():
    configs = sorted((REPO / "configs").glob("*.yaml"))
    assert any(c.name == "dpo_hh_cpu.yaml" for c in configs)
    import yaml

    for c in configs:  # run configs (with an `algo`) validate; other files there (demo, leaderboard) are not RunConfigs
        if "algo" in (yaml.safe_load(c.read_text()) or {}):
            load_config(c)
    cfg = load_config(REPO / "configs" / "dpo_hh_cpu.yaml")
    assert (cfg.algo, cfg.loss.kind, cfg.train.steps, cfg.data.max_train) == ("dpo", "dpo", 30, 64)


def test_judge_validity_fields_defaults_and_checks(tmp_path):
    cfg = load_config(None, [])
    j = cfg.judge
    assert (j.min_consistency, j.allow_biased, j.validity_pairs, j.validity_data) == (0.5, False, 32, None)
    cfg = load_config(None, ["judge.allow_biased=true", "judge.min_consistency=0.8", "judge.validity_pairs=8",
                             "judge.validity_data=/data"])
    assert (cfg.judge.allow_biased, cfg.judge.min_consistency, cfg.judge.validity_pairs) == (True, 0.8, 8)
    for bad, named in [("judge.min_consistency=1.5", "judge.min_consistency"),
                       ("judge.validity_pairs=0", "judge.validity_pairs"),
                       ("judge.allow_biased=maybe", "judge.allow_biased: expected bool")]:
        with pytest.raises(ConfigError, match=named):
            load_config(None, [bad])


def test_each_algorithm_checks_the_section_it_owns(monkeypatch):
    """algorithms.ALGORITHMS names each algorithm's check: its module holds the allowed values (rl.METHODS,
    oaif.TIE_POLICIES, reward_model.LABEL_TARGETS), config.validate holds no list of them."""
    import harness.algorithms.rl as rl
    from harness import algorithms

    assert {n: a.check for n, a in algorithms.ALGORITHMS.items() if a.check} == {
        "oaif": "harness.algorithms.oaif:check_config", "reward_model": "harness.algorithms.reward_model:check_config",
        "rlhf": "harness.algorithms.rl:check_config"}
    with pytest.raises(ConfigError, match="rl.method"):
        load_config(None, ["rl.method=grpo"])
    monkeypatch.setattr(rl, "METHODS", (*rl.METHODS, "grpo"))  # a method added where it is run
    assert load_config(None, ["rl.method=grpo"]).rl.method == "grpo"
    # soft ties need the soft loss only where OAIF reads oaif.tie_policy
    assert load_config(None, ["algo=dpo", "oaif.tie_policy=soft"]).oaif.tie_policy == "soft"
