"""Labelling pairs with a judge: pick the pairs (a stored dataset, a run's pairs or samples, a file),
ask the judge, store the labels, and summarize them (counts, verdicts, position bias, consistency).
`harness judge` parses and prints; tests and the dashboards call these the same way."""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..config import JudgeRef
from ..evaluation.bias import judgement_bias
from ..records import Pair
from ..store import PairFilter, Store


@dataclass
class PairSelection:
    """Which pairs to label: exactly one of dataset, run_id or file."""
    dataset: str | None = None
    subset: str | None = None
    run_id: str | None = None
    step: int | None = None
    file: str | None = None
    source_format: str | None = None  # with file: read it as this import-labels input kind
    limit: int | None = None
    offset: int = 0


def select_pairs(store: Store, sel: PairSelection) -> list[Pair]:
    """The pairs a selection names (ValueError when there are none)."""
    if sel.limit is not None and sel.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {sel.limit}")
    if sum(x is not None for x in (sel.dataset, sel.run_id, sel.file)) != 1:
        raise ValueError("choose the pairs by exactly one of dataset, run or file")
    if sel.file:
        pairs = _pairs_from_file(sel.file, sel.source_format, sel.limit, sel.offset)
    else:
        pairs = _pairs_from_store(store, sel)
    if not pairs:
        raise ValueError("no pairs to judge")
    return pairs


def _pairs_from_store(store: Store, sel: PairSelection) -> list[Pair]:
    if sel.dataset is not None:
        df = store.pairs_df(PairFilter(dataset=sel.dataset, subset=sel.subset), limit=sel.limit, offset=sel.offset)
        if df.empty:
            raise ValueError(f"no pairs of dataset {sel.dataset!r}" + (f" subset {sel.subset!r}" if sel.subset else "")
                             + f" in {store.db_path} (import them first: harness import-labels)")
        return store.get_pairs(df["pair_id"].tolist())
    store.get_run(sel.run_id)  # a clear error for an unknown run
    df = store.pairs_df(PairFilter(pair_run_id=sel.run_id, pair_step=sel.step))
    if not df.empty:
        pairs = store.get_pairs(df["pair_id"].tolist())
    else:
        pairs = _pairs_from_samples(store, sel.run_id, sel.step)
    pairs = pairs[sel.offset:]
    return pairs[:sel.limit] if sel.limit is not None else pairs


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


def label_pairs(store: Store, ref: JudgeRef, pairs: list[Pair], device: str | None = None, rubric: str | None = None,
                chunk: int = 16, use_cache: bool = True, progress: bool = True) -> dict:
    """Ask the judge `ref` names about `pairs`, store the labels, return the summary `judge` prints."""
    from judges import label_and_store, load_judge

    t = time.perf_counter()
    judge = load_judge(ref, store.home, device, rubric=rubric)
    t_load = time.perf_counter() - t
    t = time.perf_counter()
    # labels asked from the command line belong to no run (a training run's own labels keep their run_id)
    judgements = label_and_store(judge, pairs, store, use_cache=use_cache, batch_size=chunk, progress=progress)
    return {"judge": judge.annotator.id, "annotator_version": judge.annotator.version, "kind": judge.annotator.kind,
            "orders": list(getattr(judge, "orders", ("AB",))), "load_s": round(t_load, 2),
            **summarize(judgements, time.perf_counter() - t)}
