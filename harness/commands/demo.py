"""`harness demo [CONFIG]`: the main job on the embedded default model (configs/demo_cpu.yaml).

From one initial policy and one budget of prompts it trains offline DPO (pairs sampled once and
labelled by the AI annotator), OAIF, OAIF told to prefer shorter responses, and RLAIF (reward model on
the same AI labels + RLOO); evaluates each against the initial policy with a judge not used in
training, then every pair of trained policies against each other (head-to-head, same prompts,
both orders); imports PandaLM's human labels and reports annotator agreement; prints a summary table.
Every win rate is printed with n, wins/ties/losses, its 95% CI and a one-line verdict, and beside the
validity cards of the evaluation judge and of the training annotator(s).
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
from ..evaluation.verdicts import CI_METHOD
from ..evaluation.summary import agreement_columns, findings, head_to_head_rows, summary_rows
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
    head_to_head: bool = True  # also compare the trained policies with each other
    kl_samples: int = 2  # policy samples per eval prompt for each arm's KL(pi || initial); 0 skips


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
            # the sampled ids and truncation flags travel too: offline DPO trains on the same tokens as
            # OAIF would, and a response cut at max_new_tokens gets no EOS in either arm
            f.write(json.dumps({"prompt": e["prompt"], "chosen": e["chosen"], "rejected": e["rejected"],
                                "p": e.get("p"), "chosen_truncated": e["chosen_truncated"],
                                "rejected_truncated": e["rejected_truncated"], "chosen_ids": e.get("chosen_ids"),
                                "rejected_ids": e.get("rejected_ids")}, ensure_ascii=False) + "\n")
    store.set_run_status(run_id, "done")
    import math

    summary = {k: sum(m[k] for m in metrics if not math.isnan(m[k])) / max(1, sum(not math.isnan(m[k]) for m in metrics))
               for k in ("judge/p_first", "judge/consistency", "judge/prefers_shorter", "sample/len_mean")}
    for k in ("judge/n_pairs", "judge/order_inconsistent", "judge/order_flipped", "judge/skipped"):
        summary[k] = int(sum(m.get(k, 0.0) for m in metrics))
    summary["pairs"] = len(examples)
    del model
    if not examples:
        raise ValueError(f"demo: the annotator decided none of the {summary['judge/n_pairs']} sampled pairs "
                         f"({summary['judge/order_inconsistent']} flipped with the order shown); train on its soft "
                         "probabilities (base.loss.kind: soft, base.oaif.tie_policy: soft) or use another annotator")
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


def policy_kl(store: Store, run_id: str, home, prompts, m: int) -> dict:
    """KL(pi || initial) per sequence of a trained policy on m of its own samples per prompt
    (`harness.evaluation.kl.run_kl`: k3 per token, summed; bootstrap CI over prompts). The trainers'
    own figures are not one quantity across arms (offline DPO samples nothing), so this one is used."""
    from ..evaluation.kl import run_kl

    if m <= 0:
        return {}
    return run_kl(store, run_id, home, [r["prompt"] for r in prompts], m=m)


def print_table_with_verdicts(rows: list[dict], title: str) -> None:
    """A table without its verdict column, then the CI footnote and one verdict line per row."""
    from ..evaluation.verdicts import ci_note

    emit([{k: v for k, v in r.items() if k != "verdict"} for r in rows], "table", title=title)
    print(ci_note())
    for r in rows:
        if r.get("verdict"):
            print(f"  {r['verdict']}")


def annotator_cards(demo: DemoConfig, store: Store, arms: dict, base: dict) -> dict[str, dict]:
    """Validity cards of the training annotator(s) the arms used (one per instruction), for the judge
    exactly as training loaded it (the task's rubric is part of its version), so the card is the one
    the OAIF gate stored and nothing is asked again."""
    from judges.registry import load_judge

    from ..evaluation.validity import judge_card
    from ..models import pick_device
    from ..tasks import load_task

    cfg = arm_config(base, "oaif", "cards", judge={"name": demo.annotator})
    rubric = getattr(load_task(cfg.data.task), "rubric", None)
    refs = {}
    if {"offline_dpo", "oaif", "rlaif"} & set(arms):
        refs[demo.annotator] = None
    if "oaif_shorter" in arms:
        refs[f"{demo.annotator} + {demo.shorter_instruction!r}"] = demo.shorter_instruction
    out = {}
    for label, instruction in refs.items():
        ref = copy.deepcopy(cfg.judge)
        ref.instruction = instruction
        judge = load_judge(ref, store.home, str(pick_device(cfg.model.device)), rubric=rubric)
        out[label] = judge_card(store, judge, store.home, n_pairs=cfg.judge.validity_pairs,
                                data_root=cfg.judge.validity_data)
    return out


def print_cards(cards: dict[str, str]) -> None:
    """Judge validity cards printed under a win-rate table: the figures say how far to trust it."""
    for who, line in cards.items():
        print(f"validity card, {who}: {line}")


def add_arguments(p):
    p.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG), help="demo config (default configs/demo_cpu.yaml)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. base.train.steps=2 evaluation.n=4")


def run(args) -> int:
    from ..config import SamplingConfig
    from .eval import evaluate, head_to_head

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
        print(f"{pair_stats['pairs']} training pairs from {pair_stats['judge/n_pairs']} sampled in "
              f"{time.perf_counter() - t:.0f}s -> {pairs_file}; annotator P(first shown) "
              f"{pair_stats['judge/p_first']:.2f}, both orders agree {pair_stats['judge/consistency']:.2f}, "
              f"{pair_stats['judge/order_flipped']} pairs flipped with the order (ties: "
              f"{'kept with their soft probability' if base.get('oaif', {}).get('tie_policy') == 'soft' else 'skipped'})")
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
    evals, cache, eval_card = {}, {}, None
    for arm, info in arms.items():
        # `cache`: the initial policy and each arm answer the eval prompts once (reused by head-to-head)
        res = evaluate(store, info["run_id"], "initial", demo.evaluation.judge, n=demo.evaluation.n,
                       sampling=sampling, home=store.home, name=f"{group}:{arm} vs initial", cache=cache)
        res.pop("baseline_outputs")
        evals[arm] = res
        eval_card = res.get("judge_card")
    from ..tasks import load_task

    kl_prompts = load_task(base.get("data", {}).get("task", "quickstart")).prompts("eval")[:demo.evaluation.n]
    kls = {arm: policy_kl(store, info["run_id"], store.home, kl_prompts, demo.evaluation.kl_samples)
           for arm, info in arms.items()}
    rows = summary_rows(arms, evals, kls)
    from ..evaluation.validity import card_line

    card_dicts = {f"evaluation judge {demo.evaluation.judge}": eval_card} if eval_card else {}
    card_dicts.update({f"training annotator {k}": v for k, v in annotator_cards(demo, store, arms, base).items()})
    cards = {who: card_line(card) for who, card in card_dicts.items()}
    for row in rows:  # progress lines; the full tables come with the summary
        if row.get("verdict"):
            print(f"  {row['verdict']}; win rate {row['win_rate']:.3f} {row['ci95']}, LC {row['lc_win_rate (ci95)']}")

    h2h = None
    if demo.evaluation.head_to_head and len(arms) >= 2:
        say(f"5b/6 head-to-head: every pair of trained policies, judged by {demo.evaluation.judge} (both orders)")
        h2h = head_to_head(store, [info["run_id"] for info in arms.values()], demo.evaluation.judge,
                           n=demo.evaluation.n, sampling=sampling, home=store.home, cache=cache,
                           name=f"{group}:head-to-head")
        names = {info["run_id"]: arm for arm, info in arms.items()}
        h2h_rows = head_to_head_rows(h2h, names)
        for row in h2h_rows:
            print(f"  {row['verdict']}")

    agreement = None
    if demo.agreement.pandalm:
        say("6/6 PandaLM human labels: annotator agreement with the human majority")
        tables = agreement_stage(demo, store, group)
        agreement = tables["agreement"]
        shown = agreement[agreement["subset"] == "(all)"] if "subset" in agreement else agreement
        emit(shown[agreement_columns(shown.columns)].to_dict("records"), "table",
             title="agreement with the PandaLM human majority (n and 95% CI beside each figure)")
        rel = tables["human_reliability"]
        if not rel.empty and "ceiling" in rel.columns:
            print(f"human-human ceiling (leave-one-out): {float(rel['ceiling'].iloc[0]):.3f}")

    total = time.perf_counter() - t_start
    summary = {"group": group, "seconds": total, "rows": rows, "budget": {"steps": budget.steps,
               "prompts_per_step": budget.batch_size}, "eval_judge": demo.evaluation.judge,
               "annotator": demo.annotator, "rlaif_reward_model": arms.get("rlaif", {}).get("reward_model"),
               "ci_method": CI_METHOD, "judge_cards": cards,
               "findings": findings(rows, h2h_rows if h2h else None, card_dicts, evals=evals,
                                    reward_model=arms.get("rlaif", {}).get("reward_model")),
               "head_to_head": h2h_rows if h2h else None,
               "head_to_head_result_id": h2h.get("result_id") if h2h else None}
    store.add_result("demo_summary", summary, name=group, judge=demo.evaluation.judge, baseline="initial")
    if args.format == "json":
        emit(summary, "json")
    else:
        say(f"summary ({total / 60:.1f} min): win rate vs the initial policy, judged by {demo.evaluation.judge}")
        print_table_with_verdicts(rows, "each arm vs the initial policy")
        if h2h:
            print_table_with_verdicts(h2h_rows, "head-to-head between the arms (win rate of arm_a over arm_b)")
        print_cards(cards)
        say("in words")
        for line in summary["findings"]:
            print(line)
        home = store.home
        print(f"\nOpen the dashboard on these results:\n  .venv/bin/harness --home {home} dashboard\n"
              f"(or: HARNESS_HOME={home} .venv/bin/streamlit run dashboards/app.py)")
    return 0
