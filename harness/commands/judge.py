"""`harness judge`: label pairs with a configured judge and store the labels.

Pairs come from the store (`--dataset D [--subset S]`, e.g. after `harness import-labels`), from a
run (`--run RUN_ID [--step N]`: the pairs the run stored, else pairs of its samples that share a
prompt), or from a file (`--file PATH`: JSONL/JSON/CSV with prompt, response_a, response_b and
optional reference, dataset, subset, record_id; or any `import-labels` input kind with `--source-format`).
Prints how many labels were asked and reused, the verdict distribution, P(first shown) (position
bias: 0.5 is none) and, with both orders, how often the two orders agree. Always prints "N requests,
M failed" (stderr); exits 1 when every request failed.
"""
from __future__ import annotations

from judges.llm import MODES

from ..config import JudgeRef
from ..console import emit
from ..pipelines.label import PairSelection, label_pairs, select_pairs
from ..store import Store

def add_arguments(p):
    p.add_argument("--judge", default="smollm2-logprob",
                   help="judges/configs/<name>.yaml, rule:<rule>, rm:<run-id> (default smollm2-logprob)")
    p.add_argument("--instruction", default=None, help="free-text instruction for an LLM judge, e.g. 'prefer the shorter response'")
    p.add_argument("--mode", choices=MODES, default=None,
                   help="override the judge's scoring mode (score: pointwise, each response rated alone)")
    orders = p.add_mutually_exclusive_group()
    orders.add_argument("--both-orders", dest="both_orders", action="store_const", const=True, default=None,
                        help="ask with each response shown first and combine")
    orders.add_argument("--one-order", dest="both_orders", action="store_const", const=False, help="ask in one order only")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="pairs stored under this dataset name (e.g. pandalm after import-labels)")
    src.add_argument("--run", dest="run_id", help="pairs (or sample pairs) of this run")
    src.add_argument("--file", help="a file of pairs (prompt, response_a, response_b)")
    p.add_argument("--subset", default=None, help="with --dataset: only this subset")
    p.add_argument("--step", type=int, default=None, help="with --run: only this step")
    p.add_argument("--source-format", default=None, help="with --file: read it as this import-labels input kind (e.g. pandalm)")
    p.add_argument("--limit", type=int, default=None, help="label at most this many pairs")
    p.add_argument("--offset", type=int, default=0, help="skip this many pairs first")
    p.add_argument("--rubric", default=None, help="rubric text inserted into an LLM judge's prompt")
    p.add_argument("--device", default=None, help="device for a local judge model (default: the config's)")
    p.add_argument("--chunk", type=int, default=16, help="pairs per stored batch (an interrupted job keeps finished chunks)")
    p.add_argument("--no-cache", action="store_true", help="ask again even where a stored answer exists")


def run(args) -> int:
    store = Store(args.home)
    pairs = select_pairs(store, PairSelection(dataset=args.dataset, subset=args.subset, run_id=args.run_id,
                                              step=args.step, file=args.file, source_format=args.source_format,
                                              limit=args.limit, offset=args.offset))
    ref = JudgeRef(name=args.judge, instruction=args.instruction, mode=args.mode, both_orders=args.both_orders)
    out = label_pairs(store, ref, pairs, args.device, rubric=args.rubric, chunk=args.chunk, use_cache=not args.no_cache)
    emit(out, args.format, title=f"judge {out['judge']}")
    return failure_status(out)


def failure_status(summary: dict) -> int:
    """Print how many requests failed (stderr: stdout stays a table or JSON); 1 when every request
    failed, so a dead server or a broken config cannot pass as a finished job."""
    import sys

    asked, failed = summary["asked"], summary["errors"]
    print(f"{asked} requests, {failed} failed" + (f" ({summary['cache_hits']} answers reused)" if summary["cache_hits"] else ""),
          file=sys.stderr)
    if asked and failed == asked:
        print("error: every request failed; see raw_output of the error labels (harness judge stored them)",
              file=sys.stderr)
        return 1
    return 0
