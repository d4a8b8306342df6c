"""`harness tasks list` and `harness tasks validate [NAME ...]`: task definitions under tasks/."""
from __future__ import annotations

import sys

from ..console import emit


def add_arguments(p):
    p.add_argument("action", choices=("list", "validate"), help="list tasks, or validate task files")
    p.add_argument("names", nargs="*", help="task names or task dirs (default: every task)")


def run(args) -> int:
    from ..config import ConfigError
    from ..data import DataError
    from ..tasks import list_tasks, load_task, validate_task

    names = args.names or list_tasks()
    if args.action == "list":
        rows = []
        for name in names:
            t = load_task(name)
            d = t.spec.data
            rows.append({"task": t.name, "description": t.spec.description.strip(),
                         "prompts": d.prompts, "preferences": d.path or d.hub})
        emit(rows, args.format, title="tasks")
        return 0
    rows, failed = [], 0
    for name in names:
        try:
            rows.append({"status": "ok", **validate_task(name)})
        except (ConfigError, DataError) as e:
            failed += 1
            rows.append({"status": "error", "task": str(name), "error": str(e)})
            print(f"error: {e}", file=sys.stderr)  # in full: table cells are cut
    emit(rows, args.format, title="tasks validate")
    if failed:
        print(f"harness tasks validate: {failed} task(s) failed", file=sys.stderr)
    return 1 if failed else 0
