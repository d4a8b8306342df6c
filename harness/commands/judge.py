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

import time
from collections import Counter
from pathlib import Path

from ..config import JudgeRef
from ..evaluation.bias import judgement_bias
from ..records import Pair
from ..console import emit
from ..store import PairFilter, Store


def add_arguments(p):
    p.add_argument("--judge", default="smollm2-logprob",
                   help="judges/configs/<name>.yaml, rule:<rule>, rm:<run-id> (default smollm2-logprob)")
    p.add_argument("--instruction", default=None, help="free-text instruction for an LLM judge, e.g. 'prefer the shorter response'")
    p.add_argument("--mode", choices=("logprob", "generate"), default=None, help="override the judge's scoring mode")
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


def _pairs_from_store(store: Store, args) -> list[Pair]:
    if args.dataset is not None:
        df = store.pairs_df(PairFilter(dataset=args.dataset, subset=args.subset), limit=args.limit, offset=args.offset)
        if df.empty:
            raise ValueError(f"no pairs of dataset {args.dataset!r}" + (f" subset {args.subset!r}" if args.subset else "")
                             + f" in {store.db_path} (import them first: harness import-labels)")
        return store.get_pairs(df["pair_id"].tolist())
    store.get_run(args.run_id)  # a clear error for an unknown run
    df = store.pairs_df(PairFilter(pair_run_id=args.run_id, pair_step=args.step))
    if not df.empty:
        pairs = store.get_pairs(df["pair_id"].tolist())
    else:
        pairs = _pairs_from_samples(store, args.run_id, args.step)
    pairs = pairs[args.offset:]
    return pairs[:args.limit] if args.limit is not None else pairs


def _pairs_from_samples(store: Store, run_id: str, step: int | None) -> list[Pair]:
    """Samples of one prompt at one step, paired in the order sampled: (1st, 2nd), (3rd, 4th), ..."""
    df = store.samples_df(run_id)
    if step is not None and not df.empty:
        df = df[df["step"] == step]
    if df.empty:
        raise ValueError(f"run {run_id!r} has no pairs or samples" + (f" at step {step}" if step is not None else ""))
    pairs = []
    for (s, prompt), g in df.groupby(["step", "prompt"], sort=True):
        rows = g.to_dict("records")
        for a, b in zip(rows[0::2], rows[1::2]):
            pairs.append(Pair(prompt=prompt, response_a=a["response"], response_b=b["response"], source=f"run:{run_id}",
                              run_id=run_id, step=int(s), policy_a=a.get("policy") or run_id,
                              policy_b=b.get("policy") or run_id))
    return pairs


def _pairs_from_file(path: str, fmt: str | None, limit, offset) -> list[Pair]:
    if fmt:
        from judges.importers import read_labels

        pairs, _ = read_labels(fmt, path)
    else:
        from judges.importers.common import Fields, iter_records

        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file")
        pairs = []
        for where, rec in iter_records(p):
            f = Fields(p, where, rec)
            dataset = f.get("dataset", str, required=False, default=p.name.split(".")[0])
            rid = f.get("record_id", (str, int), required=False)
            pairs.append(Pair(prompt=f.get("prompt", str, nonempty=True), response_a=f.get("response_a", str),
                              response_b=f.get("response_b", str), source=f"file:{p.name}", dataset=dataset,
                              subset=f.get("subset", str, required=False), record_id=None if rid is None else str(rid),
                              reference=f.get("reference", str, required=False)))
    pairs = pairs[offset:]
    return pairs[:limit] if limit is not None else pairs


def summarize(judgements, seconds: float | None = None) -> dict:
    """Counts, verdicts, position bias and consistency of a list of Judgements (what `judge` prints)."""
    labels = [l for j in judgements for l in j.labels]
    fresh = [l for l in labels if not l.cached]
    bias = judgement_bias(judgements, unparsed="inconsistent")
    p_first = [l.p_a if l.shown_order == "AB" else 1 - l.p_a for l in labels if l.p_a is not None]
    out = {
        "pairs": len(judgements),
        "labels": len(labels),
        "asked": len(fresh),
        "cache_hits": len(labels) - len(fresh),
        "errors": sum(1 for l in labels if l.meta.get("error")),
        "verdicts": dict(Counter(j.verdict for j in judgements)),
        "label_verdicts": dict(Counter(l.verdict for l in labels)),
        "by_order": {o: dict(Counter(l.verdict for l in labels if l.shown_order == o)) for o in ("AB", "BA")
                     if any(l.shown_order == o for l in labels)},
        "unparsed_rate": (sum(l.verdict == "unparsed" for l in labels) / len(labels)) if labels else None,
        "p_first_shown": bias["p_first"]["value"],
        "mean_p_first": (sum(p_first) / len(p_first)) if p_first else None,
        "consistency": bias["position_consistency"]["value"],
        "tokens_in": sum(l.tokens_in or 0 for l in fresh),
        "tokens_out": sum(l.tokens_out or 0 for l in fresh),
    }
    if seconds is not None:
        out["seconds"] = round(seconds, 2)
        out["pairs_per_s"] = round(len(judgements) / seconds, 3) if seconds > 0 else None
    return out


def run(args) -> int:
    from judges import label_and_store, load_judge

    store = Store(args.home)
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    if args.file:
        pairs = _pairs_from_file(args.file, args.source_format, args.limit, args.offset)
    else:
        pairs = _pairs_from_store(store, args)
    if not pairs:
        raise ValueError("no pairs to judge")
    ref = JudgeRef(name=args.judge, instruction=args.instruction, mode=args.mode, both_orders=args.both_orders)
    t = time.perf_counter()
    judge = load_judge(ref, store.home, args.device, rubric=args.rubric)
    t_load = time.perf_counter() - t
    t = time.perf_counter()
    # labels asked from the command line belong to no run (a training run's own labels keep their run_id)
    judgements = label_and_store(judge, pairs, store, use_cache=not args.no_cache,
                                 batch_size=args.chunk, progress=True)
    out = {"judge": judge.annotator.id, "annotator_version": judge.annotator.version, "kind": judge.annotator.kind,
           "orders": list(getattr(judge, "orders", ("AB",))), "load_s": round(t_load, 2),
           **summarize(judgements, time.perf_counter() - t)}
    emit(out, args.format, title=f"judge {judge.annotator.id}")
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
