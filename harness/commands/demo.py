"""`harness demo [CONFIG]`: the main job on the embedded default model (configs/demo_cpu.yaml).

A study with a known truth (harness/pipelines/demo.py): on the verifiable task, from one initial
policy and one budget, arms that differ in the feedback source (simulated humans, the embedded AI
judge, ...) and its timing (offline pairs sampled once / OAIF), evaluated by the task's gold scorer
and by a held-out judge, against the initial policy and head-to-head, each win rate with n, W/T/L,
a 95% CI and a verdict; each source's labels scored against gold; the annotators' validity cards;
the PandaLM human labels. This command prints; the pipeline does the work and stores it.
"""
from __future__ import annotations

from ..console import emit
from ..store import Store


def add_arguments(p):
    from ..pipelines.demo import DEFAULT_CONFIG

    p.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG), help="demo config (default configs/demo_cpu.yaml)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. base.train.steps=2 evaluation.n=4")


def print_table_with_verdicts(rows: list[dict], title: str) -> None:
    """A table without its verdict column, then the CI footnote and one verdict line per row."""
    from ..evaluation.verdicts import ci_note

    emit([{k: v for k, v in r.items() if k not in ("verdict", "run_id", "ci_low", "ci_high", "gold_diff_ci")} for r in rows], "table", title=title)
    print(ci_note())
    for r in rows:
        if r.get("verdict"):
            print(f"  {r['verdict']}")


def print_summary(summary: dict, home) -> None:
    print(f"\n=== summary ({summary['seconds'] / 60:.1f} min): {summary.get('question') or summary['group']}")
    emit(summary["design"], "table", title=f"arms (budget {summary['budget']['steps']} steps x "
                                            f"{summary['budget']['prompts_per_step']} prompts each)")
    print_table_with_verdicts(summary["rows"], "each arm vs the initial policy (gold_diff: paired gold-score "
                                               "difference, 95% bootstrap CI)")
    if summary["head_to_head"]:
        print_table_with_verdicts(summary["head_to_head"], "head-to-head between the arms (win rate of arm_a over arm_b)")
    if summary["sources"]:
        emit([{k: v for k, v in s.items() if k not in ("verdict", "annotator")} for s in summary["sources"]], "table",
             title="feedback sources against gold (accuracy: same verdict as gold / pairs gold decides; Wilson 95%)")
    if summary.get("agreement_pandalm"):
        emit(summary["agreement_pandalm"], "table",
             title="agreement with the PandaLM human majority (n and 95% CI beside each figure)")
    if summary.get("eval_judges_vs_gold"):
        emit(summary["eval_judges_vs_gold"], "table", title="evaluation judges against gold on the same eval comparisons "
                                                            "(accuracy: gold's verdict / prompts gold decides; Wilson 95%)")
    for who, line in summary["judge_cards"].items():
        print(f"validity card, {who}: {line}")
    print("\n=== in words")
    for line in summary["findings"]:
        print(line)
    print_timings(summary)
    print(f"\nOpen the dashboard on these results:\n  .venv/bin/harness --home {home} dashboard\n"
          f"(or: HARNESS_HOME={home} .venv/bin/streamlit run dashboards/app.py)")


def print_timings(summary: dict) -> None:
    """Where the time went (set-up is outside it) and the machine it went on: a timing means nothing
    without the CPU and the dtypes that `auto` chose there."""
    if summary.get("timings"):
        emit(summary["timings"], "table", title=f"where the time went ({summary['seconds']:.0f} s, set-up excluded)")
    m = summary.get("machine") or {}
    if m:
        print(f"machine: {m.get('cpu') or 'unknown CPU'}, {m['cores']} cores, {m['threads']} threads, torch "
              f"{m['cpu_capability']}, bf16 native: {m['bf16_native']} ({m['bf16_why']}); dtypes: policy "
              f"{m.get('model')}, sampling {m.get('sampling')}, eval generation {m.get('generate')}, "
              f"mixed precision {m.get('mixed_precision')}")


def run(args) -> int:
    from ..pipelines.demo import run_demo

    store = Store(args.home)
    summary = run_demo(args.config, args.overrides, store)
    if args.format == "json":
        emit(summary, "json")
    else:
        print_summary(summary, store.home)
    return 0
