"""`make study` / `harness replicate [CONFIG]`: the OAIF paper's comparisons at small scale, with a
known truth, several seeds and a verdict per cell (configs/study_cpu.yaml, docs/study.md).

A study ARM is a demo arm `<timing>_<source>` (pipelines/demo.py: offline pairs sampled once, OAIF,
or RLHF = reward model + RLOO) plus run-config sections applied last (`loss: {kind: ipo}`), so
that DPO, IPO and SLiC, or DPO, rDPO and cDPO, differ in the objective only. For every seed, the
offline pairs are sampled once from the initial policy and labelled by every offline source; each
arm trains from the same initial policy with the same budget, and is scored by the task's gold
scorer against the initial policy on the eval prompts (greedy): gold win rate (ties half), mean
gold-score difference (paired by prompt), mean response length. The table (evaluation/replication.py)
gives each arm's mean over seeds with a t CI, and each contrast (a paired per-seed difference) a
verdict against the paper's claim: reproduced / not reproduced / not resolved.

Resumable: the run ids are fixed (`<study>-<arm>-s<seed>`) and every finished (arm, seed) is stored
as a `study_cell` result, so a second call reuses what is done and resumes an interrupted run from
its newest checkpoint. A finished arm's optimizer state is dropped (`prune_optimizer`; the weights
stay): 30+ runs x 1.1 GB of AdamW state would not fit on a laptop disk.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..config import ConfigError, RunConfig, _build, apply_overrides, read_yaml_mapping
from ..evaluation import replication
from ..store import Store
from ..algorithms.pairs import max_calls
from .budgets import budget_line, over_seeds
from .demo import (DemoConfig, RewardStage, RLStage, Source, _merged, arm_config, offline_sources, parse_arm,
                   sample_once, train_arm)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO / "configs" / "study_cpu.yaml"
# metric -> (what it is, unit); the per-(arm, seed) values a contrast can compare
METRICS = {
    "gold_win": ("gold win rate vs the initial policy, ties half", "share of prompts"),
    "gold_diff": ("gold score minus the initial policy's, paired by prompt", "gold points (0-2)"),
    "gold": ("mean gold score", "gold points (0-2)"),
    "chars": ("mean response length", "characters"),
}


@dataclass
class StudyArm:
    arm: str                                    # <timing>_<source> (pipelines/demo.py)
    base: dict = field(default_factory=dict)    # run-config sections applied last, e.g. {loss: {kind: ipo}}
    label: str = ""                             # what the table calls it (default: the arm's name)


@dataclass
class Contrast:
    name: str
    a: str                                      # study arms; the cell is a - b per seed
    b: str
    metric: str = "gold_diff"                   # a key of METRICS
    claim: str = "> 0"                          # '> 0', '< 0' or '>= -<margin>' (evaluation/replication.py)
    paper: str = ""                             # the paper's finding and where it is


@dataclass
class StudyEval:
    n: int = 80                                 # eval prompts (the task's first n)
    max_new_tokens: int = 48
    batch_size: int = 80                        # rows per generate() call (pipelines/demo.py EvalStage)


@dataclass
class StudyConfig:
    name: str = "study"
    question: str = ""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    sources: dict[str, Source] = field(default_factory=dict)
    arms: dict[str, StudyArm] = field(default_factory=dict)
    contrasts: list[Contrast] = field(default_factory=list)
    reward_model: RewardStage = field(default_factory=RewardStage)
    rl: RLStage = field(default_factory=RLStage)
    evaluation: StudyEval = field(default_factory=StudyEval)
    prune_optimizer: bool = True                # drop a finished arm's AdamW state (resume needs none)


def load_study_config(path: str | Path, overrides: list[str]) -> tuple[StudyConfig, dict]:
    """(StudyConfig, base run-config dict); every arm's run config is built once here, so a bad key
    fails before any training, naming the file and the key."""
    path = Path(path)
    data = read_yaml_mapping(path)
    apply_overrides(data, overrides)
    base = data.pop("base", {}) or {}
    study = _build(StudyConfig, data, f"{path}:")
    if not study.arms or not study.seeds:
        raise ConfigError(f"{path}: a study needs arms and seeds")
    for name, arm in study.arms.items():
        _, source = parse_arm(arm.arm, study.sources, f"{path}:arms.{name}.arm")
        _build(RunConfig, _merged(base, study.sources[source].base, arm.base), f"{path}:arms.{name}.base.")
    for i, c in enumerate(study.contrasts):
        where = f"{path}:contrasts[{i}]"
        for side in (c.a, c.b):
            if side not in study.arms:
                raise ConfigError(f"{where}: arm {side!r} is not one of the study's arms ({', '.join(study.arms)})")
        if c.metric not in METRICS:
            raise ConfigError(f"{where}.metric: {c.metric!r}; known: {', '.join(METRICS)}")
        try:
            replication.parse_claim(c.claim, f"{where}.claim")
        except ValueError as e:
            raise ConfigError(str(e)) from None
    return study, base


def as_demo(study: StudyConfig, base: dict, seed: int) -> DemoConfig:
    """The demo machinery's view of one seed of the study (sample_once / train_arm read these); its
    name, that of the seed's pairs run, carries a hash of what the pairs depend on."""
    from ..records import content_hash

    tag = content_hash(json.dumps([base, {n: study.sources[n].__dict__ for n in offline_sources([a.arm for a in study.arms.values()], study.sources)}],
                                  sort_keys=True, default=str), n=6)
    return DemoConfig(name=f"{study.name}-s{seed}-{tag}", sources=study.sources,
                      arms=[a.arm for a in study.arms.values()], reward_model=study.reward_model, rl=study.rl)


def seed_base(base: dict, seed: int) -> dict:
    return _merged(base, {"train": {"seed": seed}})


def arm_hash(study: StudyConfig, base: dict, name: str) -> str:
    """What decides an arm's numbers (its run configs, source, evaluation): a cell stored under another
    hash is not reused, so a changed config never mixes old and new cells in one table."""
    from ..records import content_hash

    arm = study.arms[name]
    src = study.sources[parse_arm(arm.arm, study.sources)[1]]
    return content_hash(json.dumps([arm.arm, arm.base, base, src.annotator, src.instruction, src.base,
                                    study.reward_model.__dict__, study.rl.__dict__, study.evaluation.__dict__],
                                   sort_keys=True, default=str), n=12)


def cells_done(store: Store, group: str, hashes: dict[str, str]) -> tuple[dict[tuple[str, int], dict], int]:
    """((arm, seed) -> the newest stored study_cell of this group computed under the same config, i.e.
    whose arm_hash matches; the number of this group's cells that do not match)."""
    out, stale = {}, 0
    for r in store.results("study_cell"):
        c = r["result"]
        if c.get("group") != group:
            continue
        if hashes.get(c["arm"]) == c.get("arm_hash"):
            out[(c["arm"], c["seed"])] = c
        else:
            stale += 1
    return out, stale


def pairs_for_seed(study: StudyConfig, base: dict, seed: int, store: Store, group: str) -> dict:
    """The seed's offline pairs, labelled by every offline source: read back when sampled already."""
    demo = as_demo(study, base, seed)
    for r in reversed(store.list_runs(group)):
        done = store.run_dir(r["run_id"]) / "pairs.json"
        if r["algo"] == "sample_pairs" and r["name"] == f"{demo.name}-pairs" and r["status"] == "done" and done.exists():
            return json.loads(done.read_text())
    offline = offline_sources([a.arm for a in study.arms.values()], study.sources)
    return sample_once(demo, seed_base(base, seed), offline, store, group) if offline else {}


def evaluate_cell(study: StudyConfig, arm: str, seed: int, run_id: str, store: Store, group: str, cache: dict) -> dict:
    """Gold evaluation of one trained (arm, seed) against the initial policy: the cell's values."""
    from .evaluate import evaluate
    from ..config import SamplingConfig

    sampling = SamplingConfig(temperature=0.0, max_new_tokens=study.evaluation.max_new_tokens,
                              batch_size=study.evaluation.batch_size)
    res = evaluate(store, run_id, "initial", "gold", n=study.evaluation.n, sampling=sampling, home=store.home,
                   name=f"{group}:{arm}:s{seed} vs initial (gold)", cache=cache, validity=False)
    gold = res["gold"]
    return {"gold_win": res["win_rate"], "gold_win_ci": [res["ci_low"], res["ci_high"]],
            "wins": res.get("wins"), "ties": res.get("ties"), "losses": res.get("losses"), "n": res["n"],
            "gold_diff": gold["diff"]["mean"], "gold": gold["policy"]["gold_mean"],
            "gold_initial": gold["baseline"]["gold_mean"], "chars": res["mean_chars_policy"],
            "chars_initial": res["mean_chars_baseline"], "winrate_result_id": res.get("result_id")}


def run_cell(study: StudyConfig, base: dict, name: str, seed: int, store: Store, group: str, pairs: dict,
             cache: dict, arm_hash: str) -> dict:
    arm = study.arms[name]
    t = time.perf_counter()
    info = train_arm(as_demo(study, base, seed), seed_base(base, seed), arm.arm, store, group, pairs, extra=arm.base,
                     name=f"{study.name}-{name}-s{seed}", run_id=f"{group}-{name}-s{seed}-{arm_hash[:6]}")
    if info.get("skipped"):
        raise RuntimeError(f"study arm {name}, seed {seed}: {info['skipped']}")
    trained = time.perf_counter() - t
    values = evaluate_cell(study, name, seed, info["run_id"], store, group, cache)
    if study.prune_optimizer:
        store.drop_optimizer_state(info["run_id"])
        if info.get("reward_model"):
            store.drop_optimizer_state(info["reward_model"]["run_id"])
    cell = {"group": group, "arm": name, "seed": seed, "run": arm.arm, "run_id": info["run_id"], "arm_hash": arm_hash,
            "train_seconds": trained, "seconds": time.perf_counter() - t, **values}
    if info.get("labels"):
        cell["labels"] = info["labels"]
    cell["budget"] = info.get("budget")  # steps, decided pairs per step, annotator calls (pipelines/budgets.py)
    print(budget_line(f"{name} seed {seed}", cell["budget"]), flush=True)
    store.add_result("study_cell", cell, name=f"{group}:{name}:s{seed}", run_id=info["run_id"], judge="gold",
                     baseline="initial")
    return cell


def objective(study: StudyConfig, name: str) -> str:
    """The arm's loss (or `rloo` for an RLHF arm), as its run config resolves it."""
    arm = study.arms[name]
    timing, source = parse_arm(arm.arm, study.sources)
    if timing == "rlhf":
        return "rm + rloo"
    return (_merged({"loss": {"kind": "dpo"}}, study.sources[source].base, arm.base)["loss"]).get("kind", "dpo")


def table(study: StudyConfig, cells: dict[tuple[str, int], dict]) -> dict:
    """Per arm the mean and CI over seeds of every metric; per contrast its paired difference and verdict."""
    per_arm = {name: {s: c for (a, s), c in cells.items() if a == name} for name in study.arms}
    arms = [{"arm": name, "label": study.arms[name].label or name, "run": study.arms[name].arm,
             "objective": objective(study, name), "budget": over_seeds([c.get("budget") for c in per_arm[name].values()]),
             **replication.arm_cell(per_arm[name], list(METRICS))}
            for name in study.arms]
    contrasts = [replication.contrast_cell(c.name, c.a, c.b, c.metric, c.claim, per_arm, c.paper, METRICS[c.metric][1])
                 for c in study.contrasts]
    return {"arms": arms, "contrasts": contrasts, "metrics": {k: {"what": w, "unit": u} for k, (w, u) in METRICS.items()},
            "method": replication.T_METHOD}


def run_study(config: str | Path, overrides: list[str], store: Store, group: str | None = None,
              say: Callable[[str], None] = lambda s: print(f"\n=== {s}", flush=True)) -> dict:
    """Train and evaluate every (arm, seed) not done yet in `group` (default: the study's name),
    then store and return the `study_summary` result."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    study, base = load_study_config(config, overrides)
    group = group or study.name
    hashes = {name: arm_hash(study, base, name) for name in study.arms}
    done, stale = cells_done(store, group, hashes)
    if stale:
        say(f"{stale} stored cells of {group} were computed under another config: not reused (use another --group "
            "to keep both)")
    todo = [(s, a) for s in study.seeds for a in study.arms if (a, s) not in done]
    run_cfg = arm_config(base, "oaif", "x")
    budget, budget_cfg = run_cfg.train, run_cfg.oaif
    each = (f"{budget.batch_size} decided pairs (best of k={budget_cfg.k}, at most {max_calls(run_cfg)} annotator "
            f"calls a step)" if budget_cfg.equal_budget else f"{budget.batch_size} prompts (k={budget_cfg.k})")
    say(f"study {group}: {len(study.arms)} arms x {len(study.seeds)} seeds, {budget.steps} steps x {each} each; "
        f"{len(done)} (arm, seed) cells already done, {len(todo)} to go")
    cache: dict = {}  # the initial policy answers the eval prompts once
    bar = tqdm(total=len(todo), desc="study cells (arm x seed)")
    for seed in study.seeds:
        names = [a for s, a in todo if s == seed]
        if not names:
            continue
        pairs = pairs_for_seed(study, base, seed, store, group)
        for name in names:
            bar.set_postfix_str(f"{name} seed {seed}")
            done[(name, seed)] = run_cell(study, base, name, seed, store, group, pairs, cache, hashes[name])
            bar.update(1)
    bar.close()
    for name in study.arms:  # what every arm was given, over its seeds
        b = over_seeds([done[(name, s)].get("budget") for s in study.seeds if (name, s) in done])
        if b:
            print(f"  budget {name}: steps {b['steps']}, decided pairs per step {b['decided_per_step']}, "
                  f"decided in all {b['decided']}, annotator calls {b['calls']} (ranges over {b['seeds']} seeds)")
    summary = {"group": group, "name": study.name, "question": study.question, "seeds": study.seeds,
               "budget": {"steps": budget.steps, "prompts_per_step": budget.batch_size, "k": budget_cfg.k,
                          "equal_budget": budget_cfg.equal_budget, "max_calls_per_step": max_calls(run_cfg)},
               "eval": {"judge": "gold", "n": study.evaluation.n, "sampling": "greedy",
                        "max_new_tokens": study.evaluation.max_new_tokens},
               "cells": [done[(a, s)] for s in study.seeds for a in study.arms if (a, s) in done],
               **table(study, done), "seconds_this_call": time.perf_counter() - t0,
               "seconds_all_cells": sum(c.get("seconds", 0.0) for c in done.values())}
    summary["result_id"] = store.add_result("study_summary", summary, name=group, judge="gold", baseline="initial")
    return summary


def write_outputs(summary: dict, out_dir: Path) -> dict[str, Path]:
    """study.json (everything) and study.md (the table) under `out_dir`."""
    from ..evaluation.replication import markdown

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "study.json", "markdown": out_dir / "study.md"}
    paths["json"].write_text(json.dumps(summary, indent=1, default=str))
    paths["markdown"].write_text(markdown(summary))
    return paths
