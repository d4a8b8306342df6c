"""`harness demo [CONFIG]`: the main job on the embedded default model (configs/demo_cpu.yaml).

From one initial policy and one budget of prompts it trains offline DPO (pairs sampled once and
labelled by the AI annotator), OAIF, OAIF told to prefer shorter responses, and RLAIF (reward model on
the same AI labels + RLOO); evaluates each against the initial policy with a judge not used in
training; imports PandaLM's human labels and reports annotator agreement; prints a summary table.
Every stage is an ordinary run in the store (group = the demo's id), so `harness runs`, `harness
eval` and the dashboards show it like any other.
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path


from ..config import ConfigError, RunConfig, _build, _deep_update, apply_overrides, load_config, read_yaml_mapping
from ..report import emit
from ..store import Store

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO / "configs" / "demo_cpu.yaml"


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
    judge: str = "minilm-reference"
    n: int = 16
    max_new_tokens: int = 40


@dataclass
class AgreementStage:
    pandalm: str | None = None  # path to PandaLM's testset folder or file; None skips
    embedded_judge_pairs: int = 0  # PandaLM pairs also labelled by the demo's annotator


@dataclass
class DemoConfig:
    name: str = "demo"
    annotator: str = "smollm2-logprob"
    shorter_instruction: str = "Prefer the shorter response."
    arms: list[str] = field(default_factory=lambda: ["offline_dpo", "oaif", "oaif_shorter", "rlaif"])
    reward_model: RewardStage = field(default_factory=RewardStage)
    rl: RLStage = field(default_factory=RLStage)
    evaluation: EvalStage = field(default_factory=EvalStage)
    agreement: AgreementStage = field(default_factory=AgreementStage)


ARMS = ("offline_dpo", "oaif", "oaif_shorter", "rlaif")


def load_demo_config(path: str | Path, overrides: list[str]) -> tuple[DemoConfig, dict]:
    """(DemoConfig, base run-config dict). `base.train.steps=2`-style overrides work too."""
    path = Path(path)
    data = read_yaml_mapping(path)
    apply_overrides(data, overrides)
    base = data.pop("base", {}) or {}
    where = f"{path}:"
    _build(RunConfig, copy.deepcopy(base), f"{path}:base.")  # fail early, naming the key
    demo = _build(DemoConfig, data, where)
    bad = [a for a in demo.arms if a not in ARMS]
    if bad:
        raise ConfigError(f"{path}:arms: unknown arm(s) {bad}; known: {', '.join(ARMS)}")
    if demo.agreement.pandalm and not Path(demo.agreement.pandalm).is_absolute():
        demo.agreement.pandalm = str((Path.cwd() / demo.agreement.pandalm).resolve())
    return demo, base


def arm_config(base: dict, algo: str, name: str, **sections) -> RunConfig:
    data = copy.deepcopy(base)
    _deep_update(data, sections)
    data.update(algo=algo, name=name)
    return load_config(None, [], defaults=data)


def say(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def collect_pairs(cfg: RunConfig, store: Store, group: str) -> tuple[str, Path, dict]:
    """Sample two responses per prompt ONCE from the initial policy, label them with the annotator
    (the OAIF source's own code, with no training step), and write them as a preference file."""
    import torch
    from accelerate import Accelerator

    from ..algorithms import oaif
    from ..models import load_model
    from ..trainer import StepContext, seed_everything

    run_id = store.create_run(cfg.to_dict(), "sample_pairs", task=cfg.data.task, name=cfg.name, group=group)
    store.set_run_status(run_id, "running")
    seed_everything(cfg.train.seed)
    model, tok = load_model(cfg.model, store.home, for_training=False)
    source, _ = oaif.build(cfg, store, run_id, model, tok, None, store.home)
    ctx = StepContext(0, cfg, tok, None, model.device, Accelerator(cpu=not torch.cuda.is_available()), store, run_id)
    examples, metrics = [], []
    from tqdm.auto import tqdm

    for step in tqdm(range(1, cfg.train.steps + 1), desc="sample + label pairs once"):
        ctx.step = step
        data = source.next(step, model, ctx)
        examples += data.examples
        metrics.append(data.metrics)
        store.log_metrics(run_id, step, data.metrics)
    path = store.run_dir(run_id) / "pairs.jsonl"
    with open(path, "w") as f:
        for e in examples:
            f.write(json.dumps({"prompt": e["prompt"], "chosen": e["chosen"], "rejected": e["rejected"],
                                "p": e.get("p")}, ensure_ascii=False) + "\n")
    store.set_run_status(run_id, "done")
    summary = {k: sum(m[k] for m in metrics) / len(metrics) for k in ("judge/p_first", "judge/consistency",
                                                                       "judge/prefers_shorter", "sample/len_mean")}
    summary["pairs"] = len(examples)
    del model
    return run_id, path, summary


def run_arm(cfg: RunConfig, store: Store, group: str) -> tuple[str, dict, float]:
    from .train import execute

    t = time.perf_counter()
    run_id, final, _ = execute(cfg, store, group=group)
    return run_id, final, time.perf_counter() - t


def agreement_stage(demo: DemoConfig, store: Store, group: str) -> dict:
    from judges.importers import import_labels

    from ..evaluation.frames import label_frame, to_records
    from ..evaluation.reports import agreement_report

    path = Path(demo.agreement.pandalm)
    if not path.exists():
        raise FileNotFoundError(f"agreement.pandalm: {path} not found")
    counts = import_labels(store, "pandalm", path, progress=True)
    print(f"imported PandaLM: {counts['records']} records, {counts['pairs']} pairs, {counts['labels']} labels "
          f"({counts['new_labels']} new), annotators: {', '.join(a['annotator'] for a in counts['annotators'])}")
    if demo.agreement.embedded_judge_pairs:
        from judges import label_and_store
        from judges.registry import load_judge

        from ..config import JudgeRef

        pairs_df = store.pairs_df("dataset=?", ("pandalm",), limit=demo.agreement.embedded_judge_pairs)
        pairs = store.get_pairs(list(pairs_df["pair_id"]))
        judge = load_judge(JudgeRef(name=demo.annotator), store.home)
        label_and_store(judge, pairs, store, run_id=None, step=None)
    labels = label_frame(store, dataset="pandalm")
    tables = agreement_report(labels, "human-majority", "wrong")
    result = {"reference": "human-majority", "dataset": "pandalm", "unparsed": "wrong",
              **{k: to_records(v) for k, v in tables.items()}}
    store.add_result("agreement", result, name=f"agreement:pandalm:human-majority ({group})",
                     baseline="human-majority")
    return tables


def summary_rows(arms: dict, evals: dict) -> list[dict]:
    rows = []
    for arm, info in arms.items():
        ev = evals.get(arm, {})
        final = info["final"]
        rows.append({
            "arm": arm, "run_id": info["run_id"], "annotator": info["annotator"], "train_s": round(info["seconds"]),
            "final_loss": final.get("loss"), "kl": final.get("kl"),
            "win_rate": ev.get("win_rate"), "ci": f"[{ev['ci_low']:.2f}, {ev['ci_high']:.2f}]" if ev else None,
            "lc_win_rate": ev.get("lc_win_rate"), "n": ev.get("n"),
            "chars_policy": ev.get("mean_chars_policy"), "chars_initial": ev.get("mean_chars_baseline"),
        })
    return rows


def add_arguments(p):
    p.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG), help="demo config (default configs/demo_cpu.yaml)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. base.train.steps=2 evaluation.n=4")


def run(args) -> int:
    from ..config import SamplingConfig
    from .eval import evaluate

    t_start = time.perf_counter()
    demo, base = load_demo_config(args.config, args.overrides)
    store = Store(args.home)
    group = f"{demo.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    annot = {"name": demo.annotator}
    budget = arm_config(base, "oaif", "x").train
    say(f"demo {group}: {len(demo.arms)} arms x {budget.steps} steps x {budget.batch_size} prompts, home {store.home}")

    arms: dict[str, dict] = {}
    pairs_file = None
    if {"offline_dpo", "rlaif"} & set(demo.arms):
        say("1/6 sample pairs once from the initial policy and label them with the annotator")
        cfg = arm_config(base, "oaif", f"{demo.name}-pairs", judge=annot)
        t = time.perf_counter()
        pairs_run, pairs_file, pair_stats = collect_pairs(cfg, store, group)
        print(f"{pair_stats['pairs']} labelled pairs in {time.perf_counter() - t:.0f}s -> {pairs_file}; annotator "
              f"P(first shown) {pair_stats['judge/p_first']:.2f}, both orders agree {pair_stats['judge/consistency']:.2f}")
    if "offline_dpo" in demo.arms:
        say("2/6 offline DPO on those pairs")
        cfg = arm_config(base, "dpo", f"{demo.name}-offline-dpo", data={"path": str(pairs_file)})
        run_id, final, s = run_arm(cfg, store, group)
        arms["offline_dpo"] = {"run_id": run_id, "final": final, "seconds": s, "annotator": demo.annotator}
    for arm, instruction in (("oaif", None), ("oaif_shorter", demo.shorter_instruction)):
        if arm in demo.arms:
            say(f"3/6 OAIF, annotator {demo.annotator}" + (f", instruction {instruction!r}" if instruction else ""))
            cfg = arm_config(base, "oaif", f"{demo.name}-{arm.replace('_', '-')}",
                             judge={**annot, "instruction": instruction})
            run_id, final, s = run_arm(cfg, store, group)
            label = demo.annotator + (f" + {instruction!r}" if instruction else "")
            arms[arm] = {"run_id": run_id, "final": final, "seconds": s, "annotator": label}
    if "rlaif" in demo.arms:
        say("4/6 RLAIF: reward model on the same AI labels, then RLOO")
        cfg = arm_config(base, "reward_model", f"{demo.name}-rm", data={"path": str(pairs_file)},
                         train={"steps": demo.reward_model.steps, "lr": demo.reward_model.lr})
        rm_run, rm_final, rm_s = run_arm(cfg, store, group)
        cfg = arm_config(base, "rlhf", f"{demo.name}-rlaif",
                         rl={"method": "rloo", "k": demo.rl.k, "kl_coef": demo.rl.kl_coef, "reward_model": f"rm:{rm_run}"})
        run_id, final, s = run_arm(cfg, store, group)
        arms["rlaif"] = {"run_id": run_id, "final": final, "seconds": s + rm_s, "annotator": f"rm:{rm_run}",
                         "reward_model": {"run_id": rm_run, **{k: v for k, v in rm_final.items() if k.startswith("eval/")}}}

    say(f"5/6 evaluate every policy against the initial one with {demo.evaluation.judge} (both orders)")
    sampling = SamplingConfig(temperature=0.0, max_new_tokens=demo.evaluation.max_new_tokens)
    evals, baseline_out = {}, None
    for arm, info in arms.items():
        res = evaluate(store, info["run_id"], "initial", demo.evaluation.judge, n=demo.evaluation.n,
                       sampling=sampling, home=store.home, name=f"{group}:{arm} vs initial",
                       baseline_outputs=baseline_out)
        baseline_out = res.pop("baseline_outputs")
        evals[arm] = res
        print(f"  {arm}: win rate {res['win_rate']:.3f} [{res['ci_low']:.3f}, {res['ci_high']:.3f}], "
              f"LC {res['lc_win_rate']:.3f}, n={res['n']}")

    agreement = None
    if demo.agreement.pandalm:
        say("6/6 PandaLM human labels: annotator agreement with the human majority")
        tables = agreement_stage(demo, store, group)
        agreement = tables["agreement"]
        shown = agreement[agreement["subset"] == "(all)"] if "subset" in agreement else agreement
        cols = [c for c in ("annotator", "n", "agreement", "agreement_no_ties", "kappa", "p_first", "p_longer")
                if c in shown.columns]
        emit(shown[cols].to_dict("records"), "table", title="agreement with the PandaLM human majority")
        rel = tables["human_reliability"]
        if not rel.empty and "ceiling" in rel.columns:
            print(f"human-human ceiling (leave-one-out): {float(rel['ceiling'].iloc[0]):.3f}")

    rows = summary_rows(arms, evals)
    total = time.perf_counter() - t_start
    summary = {"group": group, "seconds": total, "rows": rows, "budget": {"steps": budget.steps,
               "prompts_per_step": budget.batch_size}, "eval_judge": demo.evaluation.judge,
               "annotator": demo.annotator, "rlaif_reward_model": arms.get("rlaif", {}).get("reward_model")}
    store.add_result("demo_summary", summary, name=group, judge=demo.evaluation.judge, baseline="initial")
    if args.format == "json":
        emit(summary, "json")
    else:
        say(f"summary ({total / 60:.1f} min): win rate vs the initial policy, judged by {demo.evaluation.judge}")
        emit(rows, "table")
        home = store.home
        print(f"\nOpen the dashboard on these results:\n  .venv/bin/harness --home {home} dashboard\n"
              f"(or: HARNESS_HOME={home} .venv/bin/streamlit run dashboards/app.py)")
    return 0
