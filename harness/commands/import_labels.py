"""`harness import-labels --source-format F PATH [--limit N]`: import human (and published AI) labels.

`--source-format` names the INPUT kind (one of judges.importers.IMPORTERS); `--format` is the output
format, as for every command (`harness import-labels --source-format pandalm PATH --format json`).
Prints the counts of records, items, pairs and labels, and per annotator.
"""
from __future__ import annotations

import argparse

from ..console import emit
from ..store import Store


def _output_format(value: str) -> str:
    """The output format; an importer's name here is the old spelling of --source-format."""
    from judges.importers import IMPORTERS

    if value in IMPORTERS:
        raise argparse.ArgumentTypeError(f"{value!r} is an input kind: use --source-format {value} "
                                         "(--format is the output format, table or json)")
    if value not in ("table", "json"):
        raise argparse.ArgumentTypeError(f"invalid choice {value!r} (choose from table, json)")
    return value


def add_arguments(p):
    from judges.importers import IMPORTERS

    p.add_argument("--source-format", dest="source_format", required=True, choices=list(IMPORTERS),
                   metavar="F", help=f"input kind: {', '.join(IMPORTERS)}")
    # replaces the cli's hidden alias: the same output flag, with a pointer for the old input spelling
    p.add_argument_group("output", conflict_handler="resolve").add_argument("--format", type=_output_format, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.add_argument("path", help="file or folder to import (see the format's docstring in judges/importers/)")
    p.add_argument("--limit", type=int, default=None, help="import only the first N records")
    p.add_argument("--subset", default=None, help="hh-rlhf: subset name (default: the file name)")
    p.add_argument("--strategy", action="append", default=None,
                   help="llmbar: only these prompting strategies (repeatable; default all)")


def run(args) -> int:
    from judges.importers import import_labels

    options = {}
    if args.subset:
        options["subset"] = args.subset
    if args.strategy:
        options["strategies"] = args.strategy
    report = import_labels(Store(args.home), args.source_format, args.path, limit=args.limit, progress=True, **options)
    if args.format == "json":
        emit(report, "json")
        return 0
    keys = ("format", "path", "records", "items", "pairs", "labels", "new_pairs", "new_labels")
    summary = {k: report[k] for k in keys}
    emit(summary, "table", title=f"import-labels {args.source_format}")
    emit(report["annotators"], "table", columns=["annotator", "kind", "items", "labels", "new_labels"])
    return 0
