"""The one judge interface, the label cache, and the labelling function trainers receive.

A judge is any object with
  - `.annotator`: a `records.Annotator` (kind, id, version = hash of its config + prompt + instruction)
  - `.orders`: the presentation orders it asks by default, ("AB",) or ("AB", "BA")
  - `.judge(pairs, orders) -> list[list[Label]]`: per pair, one Label per order asked, in canonical
    terms ('A' = response_a better) with `shown_order` set
and optionally `.score(prompts, responses, references=None) -> list[float]` (one scalar per response)
and `.tie_band` (|p_a - 0.5| within it combines to a tie).

Judges never touch the store; `label_and_store` does: it reuses stored answers (content-hash cache),
asks the judge only for misses, and writes pairs + labels in one transaction. A pair whose judging
raises, or whose label carries a NaN/Inf, gets an error label (`meta.error`); the chunk goes on.
"""
from __future__ import annotations

import time
from typing import Protocol, Sequence, runtime_checkable

from harness.records import Annotator, Judgement, Label, LabelFn, Pair, combine_orders
from harness.store import Store, label_cache_key, non_finite_at

BOTH_ORDERS = ("AB", "BA")


@runtime_checkable
class Judge(Protocol):
    annotator: Annotator
    orders: tuple[str, ...]

    def judge(self, pairs: Sequence[Pair], orders: Sequence[str]) -> list[list[Label]]: ...


def error_label(pair: Pair, annotator: Annotator, order: str, error: str, latency_s: float | None = None) -> Label:
    """An answer that could not be obtained (server down, garbage): recorded, never guessed.

    `meta.error` marks it so the cache never serves it as an answer: asking again retries."""
    return Label(pair_id=pair.pair_id, annotator=annotator, verdict="unparsed", shown_order=order,
                 raw_output=f"error: {error}", latency_s=latency_s, tokens_in=0, tokens_out=0,
                 # its own dedup slot: a later good answer for the same run/step is still stored
                 meta={"error": error, "dedup": f"error:{time.time_ns()}"})


def first_shown(order: str, verdict: str) -> bool | None:
    """Did the label prefer the response shown first? None for ties and unparsed."""
    if verdict not in ("A", "B"):
        return None
    return (verdict == "A") == (order == "AB")


def _label_from_row(row: dict, annotator: Annotator, run_id, step) -> Label:
    return Label(pair_id=row["pair_id"], annotator=annotator, verdict=row["verdict"], shown_order=row["shown_order"],
                 p_a=row["p_a"], raw_output=row["raw_output"] or "", latency_s=0.0, tokens_in=0, tokens_out=0,
                 cost=0.0, run_id=run_id, step=step, cached=True,
                 # one visible cache-hit row per (run, step); asking again at the same step adds nothing
                 meta={"cached_from": row["label_id"], "dedup": "cached"})


def label_and_store(judge: Judge, pairs: Sequence[Pair], store: Store, run_id: str | None = None,
                    step: int | None = None, use_cache: bool = True, orders: Sequence[str] | None = None,
                    batch_size: int | None = None, progress: bool = False) -> list[Judgement]:
    """Label `pairs` with `judge` (reusing stored answers), store everything, return one Judgement per pair.

    `batch_size` splits the work into chunks, each written in its own transaction, so a long job that
    is interrupted keeps what it finished (and the cache skips it next time).
    """
    pairs = list(pairs)
    orders = tuple(orders or getattr(judge, "orders", ("AB",)))
    for o in orders:
        if o not in BOTH_ORDERS:
            raise ValueError(f"order {o!r} is not one of {BOTH_ORDERS}")
    if not pairs:
        return []
    chunk = batch_size or len(pairs)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(pairs), desc=f"judge {judge.annotator.id}", unit="pair")
    out: list[Judgement] = []
    try:
        for i in range(0, len(pairs), chunk):
            out += _label_chunk(judge, pairs[i:i + chunk], store, run_id, step, use_cache, orders)
            if bar is not None:
                bar.update(len(pairs[i:i + chunk]))
    finally:
        if bar is not None:
            bar.close()
    return out


def non_finite(label: Label) -> str | None:
    """Where a label carries a NaN/Inf (p_a, or a number anywhere in meta), e.g. 'p_a=nan'; None if none."""
    import math

    if label.p_a is not None and not math.isfinite(label.p_a):
        return f"p_a={label.p_a!r}"
    return non_finite_at(label.meta, "meta")


def _ask(judge, group: list[Pair], miss: tuple[str, ...]) -> list[list[Label]]:
    """judge.judge on a group; if it raises, each pair alone, and a pair that still raises gets error
    labels: one bad answer costs its own label, not the chunk (the rest is stored as usual)."""
    try:
        return judge.judge(group, miss)
    except Exception as e:
        if len(group) == 1:
            return [_raised(judge, group[0], miss, e)]
    out = []
    for p in group:
        try:
            out += judge.judge([p], miss)
        except Exception as e:
            out.append(_raised(judge, p, miss, e))
    return out


def _raised(judge, pair: Pair, miss: tuple[str, ...], e: Exception) -> list[Label]:
    msg = f"judge raised {type(e).__name__}: {e}"
    return [error_label(pair, judge.annotator, o, msg) for o in miss]


def _label_chunk(judge, pairs, store, run_id, step, use_cache, orders) -> list[Judgement]:
    ann = judge.annotator
    keys = {(p.pair_id, o): label_cache_key(ann, p.pair_id, o) for p in pairs for o in orders}
    hits = store.cached_labels(list(keys.values())) if use_cache else {}
    labels: dict[tuple[str, str], Label] = {}
    for (pid, o), key in keys.items():
        if key in hits:
            labels[(pid, o)] = _label_from_row(hits[key], ann, run_id, step)
    # ask the judge once per distinct (pair, missing orders); group pairs by the orders they miss
    todo: dict[tuple[str, ...], list[Pair]] = {}
    seen = set()
    for p in pairs:
        if p.pair_id in seen:
            continue
        seen.add(p.pair_id)
        miss = tuple(o for o in orders if (p.pair_id, o) not in labels)
        if miss:
            todo.setdefault(miss, []).append(p)
    fresh_stamp = None if use_cache else f"fresh:{time.time_ns()}"
    for miss, group in todo.items():
        answers = _ask(judge, group, miss)
        if len(answers) != len(group):
            raise RuntimeError(f"judge {ann.id} returned {len(answers)} answers for {len(group)} pairs")
        for p, labs in zip(group, answers):
            if [l.shown_order for l in labs] != list(miss):
                raise RuntimeError(f"judge {ann.id} answered orders {[l.shown_order for l in labs]}, asked {list(miss)}")
            for i, lab in enumerate(labs):
                bad = non_finite(lab)
                if bad:  # never a verdict, never stored: the store refuses it and later reads would break
                    lab = labs[i] = error_label(p, ann, lab.shown_order, f"non-finite {bad}", lab.latency_s)
                lab.run_id, lab.step = run_id, step
                if fresh_stamp:  # asked again on purpose: keep it as a new row
                    lab.meta.setdefault("dedup", fresh_stamp)
                labels[(p.pair_id, lab.shown_order)] = lab
    distinct = list({p.pair_id: p for p in pairs}.values())
    items = store.pair_items([p.pair_id for p in distinct])
    for (pid, o), lab in labels.items():
        if pid in items and "item" not in lab.meta:
            lab.meta["item"] = items[pid]
    store.add_labels([labels[(p.pair_id, o)] for p in distinct for o in orders], distinct)
    tie_band = getattr(judge, "tie_band", 0.0) or 0.0
    out = []
    for p in pairs:
        labs = [labels[(p.pair_id, o)] for o in orders]
        verdict, p_a, consistent = combine_orders(labs, tie_band)
        out.append(Judgement(pair=p, verdict=verdict, p_a=p_a, labels=labs, consistent=consistent))
    return out


def make_label_fn(judge: Judge, store: Store, run_id: str | None = None, use_cache: bool = True,
                  orders: Sequence[str] | None = None) -> LabelFn:
    """What a trainer receives: `fn(pairs, step=None) -> list[Judgement]`, stored under `run_id`.

    Without an explicit step, a pair's own `step` is used (OAIF pairs carry the step they were sampled at)."""

    def label_fn(pairs: Sequence[Pair], step: int | None = None) -> list[Judgement]:
        pairs = list(pairs)
        if step is not None or not pairs:
            return label_and_store(judge, pairs, store, run_id, step, use_cache, orders)
        by_step: dict = {}
        for i, p in enumerate(pairs):
            by_step.setdefault(p.step, []).append(i)
        out: list = [None] * len(pairs)
        for s, idx in by_step.items():
            for i, j in zip(idx, label_and_store(judge, [pairs[i] for i in idx], store, run_id, s, use_cache, orders)):
                out[i] = j
        return out

    label_fn.judge = judge  # so callers can reach .annotator / .score
    return label_fn
