"""`harness export OUT [--layout trl|long] [--label-source S] [filters]`: the store's pairs and labels
as a Hugging Face `datasets` folder (harness/pipelines/export.py). `--layout trl`: TRL's preference
format (`prompt`, `chosen`, `rejected`; `--conversational` for chat messages) labelled by one source,
the human majority or one annotator; `--layout long`: every label with its provenance, which
`harness import-labels --source-format hf OUT` reads back. `--layout`, not `--format`: `--format` is the
printed output (table | json) for every command.
"""
from __future__ import annotations

from ..console import emit
from ..store import Store


def add_arguments(p):
    from ..pipelines.export import HUMAN_MAJORITY, LAYOUTS

    p.add_argument("out", help="folder to write (Dataset.save_to_disk) with export.json beside the data")
    p.add_argument("--layout", choices=LAYOUTS, default="trl",
                   help="trl: prompt/chosen/rejected per item (default); long: one row per label, with provenance")
    p.add_argument("--label-source", default=HUMAN_MAJORITY,
                   help=f"trl layout: which labels choose the side: {HUMAN_MAJORITY} (default) or an annotator id")
    p.add_argument("--both-orders", action="store_true",
                   help="trl layout, one annotator: only items asked in both orders with the same verdict")
    p.add_argument("--conversational", action="store_true",
                   help="trl layout: prompt/chosen/rejected as chat messages instead of plain text")
    p.add_argument("--dataset", default=None, help="only pairs of this dataset (e.g. pandalm)")
    p.add_argument("--annotators", nargs="+", default=None, help="only labels of these annotator ids")
    p.add_argument("--kinds", nargs="+", default=None,
                   help="only labels of these annotator kinds (human, simulated-human, llm, reward_model, rule)")
    p.add_argument("--task", default=None, help="only pairs of this task (its eval pairs and its runs' samples)")
    p.add_argument("--push-to-hub", default=None, metavar="REPO",
                   help="also push to the Hugging Face Hub (needs a network and a token)")


def run(args) -> int:
    from ..pipelines.export import ExportFilter, build_export, save_export

    flt = ExportFilter(dataset=args.dataset, annotators=args.annotators, kinds=args.kinds, task=args.task)
    try:
        export = build_export(Store(args.home), args.layout, args.label_source, flt, args.both_orders,
                              args.conversational)
    except ValueError as e:
        print(f"harness export: {e}")
        return 2
    info = save_export(export, args.out, args.push_to_hub, filters=flt.describe())
    emit(info, args.format, title=f"exported {info['rows']} rows ({info['layout']}) to {info['path']}")
    return 0
