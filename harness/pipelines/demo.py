"""The demo as a study with a known truth (configs/demo_cpu.yaml, `harness demo`).

An arm is `<timing>_<source>`: a feedback SOURCE (an annotator: simulated humans, the embedded AI
judge, the gold scorer, ...; `sources:` in the config) given at a TIMING:
  offline  DPO on pairs sampled ONCE from the initial policy and labelled by the source,
  oaif     OAIF: every step samples k (default 2) responses from the current policy and asks the source,
  rlhf     a reward model on the offline labels of the source, then RLOO with it.
Every arm starts from the same initial policy with the same budget (train.steps, the same seeded
prompt order; under oaif.equal_budget train.batch_size DECIDED pairs a step: docs/study.md "Budgets"). Each arm is evaluated against the initial policy and
head-to-head by each evaluation judge (the task's gold scorer first, then a held-out judge), with
n, W/T/L and a 95% CI; each source's labels are scored against gold on the pairs it labelled; the
annotators' validity cards (PandaLM/LLMBar human agreement, position consistency) sit beside them.
Every stage is an ordinary run or result in the store (group = the demo's id).
"""
from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..clock import StageClock
from ..config import ConfigError, RunConfig, _build, _deep_update, apply_overrides, load_config, read_yaml_mapping
from ..devices import machine  # the CPU and dtypes every timing is stated with
from ..evaluation.summary import source_label
from ..store import Store
from .budgets import arm_budget, budget_line

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO / "configs" / "demo_cpu.yaml"


@dataclass
class Source:
    annotator: str                      # judges/configs/<name>.yaml, rule:..., gold:<task>, rm:<run>
    instruction: str | None = None      # the annotator's instruction (an LLM judge's), part of the source
    kind: str = "ai"                    # what the source stands for: human | ai | gold (for the summary's words)
    base: dict = field(default_factory=dict)  # run-config sections its labels need (loss.kind, oaif.tie_policy)


@dataclass
class RewardStage:
    steps: int = 8
    lr: float = 2e-5


@dataclass
class RLStage:
    k: int = 2
    kl_coef: float = 0.05


@dataclass
class EvalStage:
    judges: list[str] = field(default_factory=lambda: ["gold", "minilm-reference"])  # first = primary
    n: int = 48
    max_new_tokens: int = 48
    head_to_head: bool = True
    kl_samples: int = 0  # policy samples per eval prompt for each arm's KL(pi || initial); 0 skips
    # rows per generate() call: on a CPU one large batch is faster per row than several small ones
    # (measured, 2-core AVX2 EPYC, greedy 48 tokens: 80 prompts in 60 s at 16 rows, 38 s at 80)
    batch_size: int = 80


@dataclass
class AgreementStage:
    pandalm: str | None = None  # PandaLM's testset folder or file: human labels imported; None skips


@dataclass
class DemoConfig:
    name: str = "demo"
    question: str = ""
    sources: dict[str, Source] = field(default_factory=dict)
    arms: list[str] = field(default_factory=list)
    reward_model: RewardStage = field(default_factory=RewardStage)
    rl: RLStage = field(default_factory=RLStage)
    evaluation: EvalStage = field(default_factory=EvalStage)
    agreement: AgreementStage = field(default_factory=AgreementStage)
    # rows per generate() call for the pairs sampled once (the initial policy does not change between
    # steps, so all steps can share one batch; measured 64 x 2 samples: 94 s at 16 rows, 66 s at 128)
    sample_batch_size: int = 128


TIMINGS = ("offline", "oaif", "rlhf")


def parse_arm(arm: str, sources: dict, where: str = "arms") -> tuple[str, str]:
    timing, _, source = arm.partition("_")
    if timing not in TIMINGS or source not in sources:
        raise ConfigError(f"{where}: arm {arm!r} is not <timing>_<source>; timings: {', '.join(TIMINGS)}; "
                          f"sources: {', '.join(sources) or '(none)'}")
    return timing, source


def offline_sources(arms: list[str], sources: dict) -> list[str]:
    """The sources whose labels some arm needs on pairs sampled once (offline and rlhf arms), in order."""
    timed = [parse_arm(a, sources) for a in arms]
    return list(dict.fromkeys(source for timing, source in timed if timing in ("offline", "rlhf")))


def load_demo_config(path: str | Path, overrides: list[str]) -> tuple[DemoConfig, dict]:
    """(DemoConfig, base run-config dict). `base.train.steps=2`-style overrides work too."""
    path = Path(path)
    data = read_yaml_mapping(path)
    apply_overrides(data, overrides)
    base = data.pop("base", {}) or {}
    _build(RunConfig, copy.deepcopy(base), f"{path}:base.")  # fail early, naming the key
    demo = _build(DemoConfig, data, f"{path}:")
    if not demo.arms:
        raise ConfigError(f"{path}:arms: no arms")
    for arm in demo.arms:
        parse_arm(arm, demo.sources, f"{path}:arms")
    for name, src in demo.sources.items():
        _build(RunConfig, _merged(base, src.base), f"{path}:sources.{name}.base.")
    if demo.agreement.pandalm and not Path(demo.agreement.pandalm).is_absolute():
        demo.agreement.pandalm = str((Path.cwd() / demo.agreement.pandalm).resolve())
    return demo, base


def _merged(base: dict, *sections: dict) -> dict:
    data = copy.deepcopy(base)
    for s in sections:
        _deep_update(data, copy.deepcopy(s))
    return data


def arm_config(base: dict, algo: str, name: str, *sections: dict) -> RunConfig:
    data = _merged(base, *sections)
    data.update(algo=algo, name=name)
    return load_config(None, [], defaults=data)


def judge_section(src: Source) -> dict:
    return {"judge": {"name": src.annotator, "instruction": src.instruction}}


# -- stage 1: pairs sampled once from the initial policy, labelled by every offline source ------------
def sample_once(demo: DemoConfig, base: dict, names: list[str], store: Store, group: str) -> dict[str, dict]:
    """One `sample_pairs` run: prompts sampled from the initial policy (the OAIF source's own sampling,
    k responses each, no training), labelled by every source in `names` (pipelines/pool.py: train.steps
    batches, or under oaif.equal_budget until each source has steps x batch_size decided pairs).
    Returns per source {path (its pairs file), pairs (training pairs written), run_id, calls (annotator
    calls that made them), and the metrics summed (`summed`: judge/n_pairs, judge/gold_decided, ...)}."""
    import torch
    from accelerate import Accelerator
    from judges import make_label_fn
    from judges.gold import make_gold_judge
    from judges.registry import load_judge
    from ..algorithms import oaif
    from ..models import load_model, pick_device
    from ..tasks import load_task
    from ..trainer import StepContext, seed_everything
    from .pool import label_pool

    first = demo.sources[names[0]]
    cfg = arm_config(base, "oaif", f"{demo.name}-pairs", first.base, judge_section(first),
                     {"sampling": {"batch_size": demo.sample_batch_size}})
    run_id = store.create_run(cfg.to_dict(), "sample_pairs", task=cfg.data.task, name=cfg.name, group=group)
    store.set_run_status(run_id, "running")
    seed_everything(cfg.train.seed)
    model, tok = load_model(cfg.model, store.home, for_training=False, role="generate")
    source, _ = oaif.build(cfg, store, run_id, model, tok, None, store.home)
    task = load_task(cfg.data.task)
    if source.gold is None and task.gold_rows():  # the first source is the gold scorer itself: score the others
        source.gold = make_gold_judge(cfg.data.task)
    device = str(pick_device(cfg.model.device))
    labellers = {}
    for name in names:
        scfg = arm_config(base, "oaif", "x", demo.sources[name].base, judge_section(demo.sources[name]))
        judge = load_judge(scfg.judge, store.home, device, rubric=getattr(task, "rubric", None))
        labellers[name] = (make_label_fn(judge, store, run_id), scfg.oaif.tie_policy)
    ctx = StepContext(0, cfg, tok, None, model.device, Accelerator(cpu=not torch.cuda.is_available()), store, run_id)
    try:  # pipelines/pool.py: k samples per prompt; under oaif.equal_budget until each source's pool is full
        out = label_pool(source, model, ctx, labellers, cfg, store, run_id, demo.sample_batch_size)
    except ValueError as e:
        store.set_run_status(run_id, "failed", note=str(e)[:500])
        raise
    del model
    result = {}
    for name, got in out.items():
        # the sampled ids and truncation flags travel: offline DPO trains on the tokens OAIF would
        keys = ("prompt", "chosen", "rejected", "p", "chosen_truncated", "rejected_truncated", "chosen_ids",
                "rejected_ids")
        path = store.write_run_file(run_id, f"pairs-{name}.jsonl", "".join(
            json.dumps({k: e.get(k) for k in keys}, ensure_ascii=False) + "\n" for e in got["examples"]))
        result[name] = {"path": str(path), "pairs": len(got["examples"]), "run_id": run_id,
                        **summed(got["metrics"]), "calls": got["calls"]}
    # read back by a study that resumes (pipelines/study.py: the pairs of a seed are sampled once)
    store.write_run_file(run_id, "pairs.json", json.dumps(result))
    store.set_run_status(run_id, "done")
    return result


SUMMED = ("judge/n_pairs", "judge/order_inconsistent", "judge/order_flipped", "judge/skipped",
          "judge/gold_decided", "judge/gold_agree", "source/n_examples", "source/decided", "source/calls")
MEANS = ("judge/p_first", "judge/consistency", "judge/prefers_shorter", "sample/len_mean")


def summed(metrics: list[dict]) -> dict:
    """Counts summed over steps, rates averaged over the steps that have them."""
    def count(m, k):
        return 0.0 if (v := m.get(k)) is None or (isinstance(v, float) and math.isnan(v)) else v

    out = {k: int(sum(count(m, k) for m in metrics)) for k in SUMMED}
    for k in MEANS:
        vals = [m[k] for m in metrics if k in m and not math.isnan(m[k])]
        out[k] = sum(vals) / len(vals) if vals else float("nan")
    return out


def online_gold_counts(store: Store, run_id: str) -> dict:
    """An OAIF run's per-step judge metrics, summed like `summed` (judge/gold_* counts included)."""
    df = store.metrics([run_id])
    rows = [{k: float(v) for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            for r in df.to_dict("records")]
    return summed(rows)


# -- the arms -----------------------------------------------------------------------------------------
def run_or_resume(cfg: RunConfig, store: Store, group: str, run_id: str | None = None) -> tuple[str, dict]:
    """`execute` the run; with a `run_id` that exists: reuse it when done, else resume it from its
    newest checkpoint (a study killed mid-run picks up where it stopped)."""
    from .train import execute

    if run_id and store.has_run(run_id):
        if store.get_run(run_id)["status"] == "done" and store.latest_checkpoint(run_id) is not None:
            return run_id, {"reused": True}
        cfg.resume = True
    run_id, final, _ = execute(cfg, store, run_id=run_id, group=group)
    return run_id, final


def train_arm(demo: DemoConfig, base: dict, arm: str, store: Store, group: str, pairs: dict,
              extra: dict | None = None, name: str | None = None, run_id: str | None = None) -> dict:
    """Train one arm. `extra`: run-config sections applied last (a study's loss.kind, ...); `name` and
    `run_id` (a study's fixed ids, so that it resumes) default to `<demo>-<arm>` and a new id."""
    timing, source_name = parse_arm(arm, demo.sources)
    src = demo.sources[source_name]
    name = name or f"{demo.name}-{arm}"
    extra = extra or {}
    t = time.perf_counter()
    info = {"arm": arm, "timing": timing, "source": source_name, "source_kind": src.kind,
            "annotator": source_label(source_name, src)}
    if timing in ("offline", "rlhf") and not pairs[source_name]["pairs"]:
        return {**info, "skipped": f"source {source_name} decided none of the "
                                   f"{pairs[source_name]['judge/n_pairs']} sampled pairs"}
    if timing == "offline":  # equal budgets: the pool is exactly the pairs to train on, none held out
        held = {"eval_fraction": 0.0} if arm_config(base, "dpo", name, src.base, extra).oaif.equal_budget else {}
        cfg = arm_config(base, "dpo", name, src.base, {"data": {"path": pairs[source_name]["path"], **held}}, extra)
    elif timing == "oaif":
        cfg = arm_config(base, "oaif", name, src.base, judge_section(src), extra)
    else:
        rm_cfg = arm_config(base, "reward_model", f"{name}-rm", src.base,
                            {"data": {"path": pairs[source_name]["path"]},
                             "train": {"steps": demo.reward_model.steps, "lr": demo.reward_model.lr}})
        rm_run, rm_final = run_or_resume(rm_cfg, store, group, f"{run_id}-rm" if run_id else None)
        info["reward_model"] = {"run_id": rm_run, **{k: v for k, v in rm_final.items() if k.startswith("eval/")}}
        cfg = arm_config(base, "rlhf", name, {"rl": {
            "method": "rloo", "k": demo.rl.k, "kl_coef": demo.rl.kl_coef, "reward_model": f"rm:{rm_run}"}}, extra)
    run_id, final = run_or_resume(cfg, store, group, run_id)
    info.update(run_id=run_id, final=final, seconds=time.perf_counter() - t)
    if timing == "oaif":
        info["labels"] = online_gold_counts(store, run_id)
    info["budget"] = arm_budget(store, info, pairs)  # steps, decided pairs per step, annotator calls
    return info


# -- evaluation ---------------------------------------------------------------------------------------
def evaluate_arms(demo: DemoConfig, arms: dict, store: Store, group: str, say: Callable[[str], None]) -> dict:
    """Per evaluation judge: each arm vs the initial policy, and head-to-head (policies answer once)."""
    from .evaluate import evaluate, head_to_head
    from ..config import SamplingConfig

    sampling = SamplingConfig(temperature=0.0, max_new_tokens=demo.evaluation.max_new_tokens,
                              batch_size=demo.evaluation.batch_size)
    cache, out = {}, {}
    trained = {a: i for a, i in arms.items() if i.get("run_id")}
    for judge in demo.evaluation.judges:
        say(f"evaluate every arm against the initial policy with {judge} (greedy, n={demo.evaluation.n})")
        evals = {}
        for arm, info in trained.items():
            res = evaluate(store, info["run_id"], "initial", judge, n=demo.evaluation.n, sampling=sampling,
                           home=store.home, name=f"{group}:{arm} vs initial ({judge})", cache=cache)
            res.pop("baseline_outputs")
            evals[arm] = res
        h2h = None
        if demo.evaluation.head_to_head and len(trained) >= 2:
            h2h = head_to_head(store, [i["run_id"] for i in trained.values()], judge, n=demo.evaluation.n,
                               sampling=sampling, home=store.home, cache=cache, name=f"{group}:head-to-head ({judge})")
        out[judge] = {"evals": evals, "head_to_head": h2h}
    return out


def policy_kls(demo: DemoConfig, base: dict, arms: dict, store: Store) -> dict:
    from ..evaluation.kl import run_kl
    from ..tasks import load_task

    if demo.evaluation.kl_samples <= 0:
        return {}
    prompts = [r["prompt"] for r in load_task(base.get("data", {}).get("task", "verifiable")).prompts("eval")]
    return {a: run_kl(store, i["run_id"], store.home, prompts[:demo.evaluation.n], m=demo.evaluation.kl_samples)
            for a, i in arms.items() if i.get("run_id")}


def source_cards(demo: DemoConfig, base: dict, store: Store) -> dict[str, dict]:
    """Validity card of every source's annotator as its arms loaded it: PandaLM/LLMBar agreement and
    position consistency for an LLM/rule judge; the reason for the gold scorer and simulated raters."""
    from judges.registry import load_judge

    from ..evaluation.gold_eval import task_card
    from ..evaluation.validity import judge_card
    from ..models import pick_device
    from ..tasks import load_task

    used = dict.fromkeys(parse_arm(a, demo.sources)[1] for a in demo.arms)
    out = {}
    for name in used:
        src = demo.sources[name]
        cfg = arm_config(base, "oaif", "cards", src.base, judge_section(src))
        judge = load_judge(cfg.judge, store.home, str(pick_device(cfg.model.device)),
                           rubric=getattr(load_task(cfg.data.task), "rubric", None))
        own = task_card(judge)
        out[f"source {source_label(name, src)}"] = own[0] if own else judge_card(
            store, judge, store.home, n_pairs=cfg.judge.validity_pairs, data_root=cfg.judge.validity_data)
    return out


def pandalm_agreement(demo: DemoConfig, store: Store, group: str) -> dict:
    from judges.importers import import_labels

    from ..evaluation.frames import label_frame, to_records
    from ..evaluation.reports import agreement_report

    path = Path(demo.agreement.pandalm)
    if not path.exists():
        raise FileNotFoundError(f"agreement.pandalm: {path} not found")
    counts = import_labels(store, "pandalm", path, progress=True)
    tables = agreement_report(label_frame(store, dataset="pandalm"), "human-majority", "wrong")
    result = {"reference": "human-majority", "dataset": "pandalm", "unparsed": "wrong",
              **{k: to_records(v) for k, v in tables.items()}}
    store.add_result("agreement", result, name=f"agreement:pandalm:human-majority ({group})",
                     baseline="human-majority")
    return {"counts": counts, "tables": tables}


# -- the whole demo -----------------------------------------------------------------------------------
def run_demo(config: str | Path, overrides: list[str], store: Store,
             say: Callable[[str], None] = lambda s: print(f"\n=== {s}", flush=True)) -> dict:
    """Run every stage, store the `demo_summary` result and return it (summary.demo_summary)."""
    from ..evaluation.summary import demo_summary, judges_vs_gold, source_rows
    from ..evaluation.validity import card_line

    t_start, say = time.perf_counter(), StageClock(say)  # every announcement starts a timed stage
    demo, base = load_demo_config(config, overrides)
    group = f"{demo.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    first = arm_config(base, "oaif", "x")
    budget = first.train
    say(f"demo {group}: {len(demo.arms)} arms ({', '.join(demo.arms)}) x {budget.steps} steps x "
        f"{budget.batch_size} prompts, home {store.home}")
    offline = offline_sources(demo.arms, demo.sources)
    pairs = {}
    if offline:
        say(f"sample pairs once from the initial policy; label them with {', '.join(offline)}")
        pairs = sample_once(demo, base, offline, store, group)
        for name, p in pairs.items():
            print(f"  {name}: {p['pairs']} training pairs of {p['judge/n_pairs']} sampled; gold decides "
                  f"{p['judge/gold_decided']}, the source agrees on {p['judge/gold_agree']}")
    arms = {}
    for arm in demo.arms:
        say(f"arm {arm}")
        arms[arm] = train_arm(demo, base, arm, store, group, pairs)
        print(f"  skipped: {arms[arm]['skipped']}" if arms[arm].get("skipped") else budget_line(arm, arms[arm]["budget"]))
    evaluation = evaluate_arms(demo, arms, store, group, say)
    kls = policy_kls(demo, base, arms, store)
    say("validity cards of the sources' annotators")
    cards = source_cards(demo, base, store)
    for judge, ev in evaluation.items():
        card = next((e.get("judge_card") for e in ev["evals"].values() if e.get("judge_card")), None)
        if card:
            cards[f"evaluation judge {judge}"] = card
    agreement = None
    if demo.agreement.pandalm:
        say("PandaLM human labels: every annotator's agreement with the human majority")
        agreement = pandalm_agreement(demo, store, group)
    summary = demo_summary(demo, budget, first.data.task, group, arms, pairs, evaluation, kls, cards,
                           source_rows(demo.sources, pairs, arms), agreement, judges_vs_gold(evaluation))
    summary.update(seconds=time.perf_counter() - t_start, timings=say.rows(), machine=machine(first.to_dict()),
                   budgets={a: i["budget"] for a, i in arms.items() if i.get("budget")})
    summary["judge_cards"] = {who: c.get("note") or card_line(c) for who, c in cards.items()}
    summary["result_id"] = store.add_result("demo_summary", summary, name=group,
                                            judge=demo.evaluation.judges[0], baseline="initial")
    return summary
