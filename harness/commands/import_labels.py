"""`harness import-labels --format F PATH [--limit N]`: import human (and published AI) labels.

After the command, `--format` names the INPUT format (one of judges.importers.IMPORTERS); the
output format is the global flag before the command (`harness --format json import-labels ...`)
or `--output json`. Prints the counts of records, items, pairs and labels, and per annotator.
"""
from __future__ import annotations

from ..report import emit
from ..store import Store


def add_arguments(p):
    from judges.importers import IMPORTERS

    # The subcommand's `--format` is the input format here: a 'resolve' group replaces the cli's
    # hidden output-format alias after the command (the global one before it still works).
    g = p.add_argument_group("input", conflict_handler="resolve")
    g.add_argument("--format", "--input-format", dest="input_format", required=True, choices=list(IMPORTERS),
                   metavar="F", help=f"input format: {', '.join(IMPORTERS)}")
    p.add_argument("path", help="file or folder to import (see the format's docstring in judges/importers/)")
    p.add_argument("--limit", type=int, default=None, help="import only the first N records")
    p.add_argument("--subset", default=None, help="hh-rlhf: subset name (default: the file name)")
    p.add_argument("--strategy", action="append", default=None,
                   help="llmbar: only these prompting strategies (repeatable; default all)")
    p.add_argument("--output", choices=("table", "json"), default=None,
                   help="output format (default: the global --format)")


def run(args) -> int:
    from judges.importers import import_labels

    options = {}
    if args.subset:
        options["subset"] = args.subset
    if args.strategy:
        options["strategies"] = args.strategy
    report = import_labels(Store(args.home), args.input_format, args.path, limit=args.limit, progress=True, **options)
    fmt = args.output or args.format
    if fmt == "json":
        emit(report, "json")
        return 0
    keys = ("format", "path", "records", "items", "pairs", "labels", "new_pairs", "new_labels")
    summary = {k: report[k] for k in keys}
    emit(summary, "table", title=f"import-labels {args.input_format}")
    emit(report["annotators"], "table", columns=["annotator", "kind", "items", "labels", "new_labels"])
    return 0
