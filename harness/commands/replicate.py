"""`harness replicate [CONFIG]` (`make study`): the OAIF and robust-DPO papers' comparisons at small
scale on the verifiable task, 3 seeds, a verdict per cell (harness/pipelines/study.py,
configs/study_cpu.yaml, docs/study.md). Resumable: run it again with the same --group and it
reuses every finished (arm, seed) and resumes an interrupted run. Prints the replication table and
writes it as markdown and JSON under <home>/reports/<group>/.
"""
from __future__ import annotations

from pathlib import Path

from ..console import emit
from ..store import Store


def add_arguments(p):
    from ..pipelines.study import DEFAULT_CONFIG

    p.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG), help="study config (default configs/study_cpu.yaml)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. seeds=[0] base.train.steps=2 evaluation.n=8")
    p.add_argument("--group", default=None, help="the study's group (default: its name); the same group resumes")
    p.add_argument("--out", default=None, help="folder for study.md and study.json (default <home>/reports/<group>)")


def run(args) -> int:
    from ..pipelines.study import run_study, write_outputs

    store = Store(args.home)
    summary = run_study(args.config, args.overrides, store, group=args.group)
    paths = write_outputs(summary, Path(args.out) if args.out else store.home / "reports" / summary["group"])
    if args.format == "json":
        emit(summary, "json")
        return 0
    print(f"\n=== study {summary['group']}: {summary['seconds_this_call'] / 60:.1f} min this call, "
          f"{summary['seconds_all_cells'] / 60:.1f} min over all cells")
    print(paths["markdown"].read_text())
    print(f"written: {paths['markdown']}\n         {paths['json']}")
    return 0
