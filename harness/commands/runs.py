"""`harness runs`: list runs with status and last metrics."""
from __future__ import annotations

from ..console import emit
from ..store import Store

SHOWN_METRICS = ("loss", "reward_acc", "reward_margin", "kl_nats_per_seq", "reward_mean", "response_len")


def add_arguments(p):
    p.add_argument("--group", default=None, help="only runs of this group (e.g. one demo)")


def run(args) -> int:
    runs = Store(args.home).list_runs(group=args.group)
    if args.format == "json":
        emit(runs, "json")
        return 0
    rows = []
    for r in runs:
        row = {"run_id": r["run_id"], "algo": r["algo"], "task": r["task"], "status": r["status"], "step": r["last_step"]}
        row.update({k: r["last_metrics"].get(k) for k in SHOWN_METRICS if k in r["last_metrics"]})
        rows.append(row)
    emit(rows, "table")
    return 0
