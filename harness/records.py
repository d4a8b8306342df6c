"""The records every part of the harness exchanges: a pair to compare and a label on it.

Human and AI labels are the same record (FastChat's `play_a_match_pair` idea): a verdict on a
pair, the order it was shown in, the annotator (kind, id, version) and the raw output.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Callable, Sequence

VERDICTS = ("A", "B", "tie", "unparsed")
ANNOTATOR_KINDS = ("human", "llm", "reward_model", "rule")
ORDERS = ("AB", "BA")


def content_hash(*parts: object, n: int = 16) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, ensure_ascii=False, default=str).encode())
        h.update(b"\x00")
    return h.hexdigest()[:n]


def prompt_text(prompt) -> str:
    """A prompt as a Pair and the store hold it: the text, or chat messages as JSON. Every producer
    of pairs (OAIF, RL, eval) uses this, so the same prompt is the same pair text everywhere."""
    return prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False)


@dataclass
class Pair:
    """Two responses to one prompt. A and B are the canonical order; labels say how it was shown."""

    prompt: str
    response_a: str
    response_b: str
    source: str = ""  # e.g. "run:<run_id>" or "dataset:pandalm"
    dataset: str | None = None
    subset: str | None = None
    record_id: str | None = None  # id in the source dataset (e.g. PandaLM idx)
    run_id: str | None = None
    step: int | None = None
    policy_a: str | None = None  # model or run that wrote response A
    policy_b: str | None = None
    reference: str | None = None  # reference answer, where the source has one
    meta: dict = field(default_factory=dict)

    @property
    def pair_id(self) -> str:
        return content_hash(self.prompt, self.response_a, self.response_b)


@dataclass
class Annotator:
    kind: str  # human | llm | reward_model | rule
    id: str  # e.g. "smollm2-logprob", "pandalm:annotator1", "rule:shorter"
    version: str  # hash of the judge config and prompt, or a dataset/commit tag for humans
    config: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in ANNOTATOR_KINDS:
            raise ValueError(f"annotator kind {self.kind!r} is not one of {ANNOTATOR_KINDS}")


@dataclass
class Label:
    """One verdict on one pair, in canonical A/B terms, asked in one presentation order."""

    pair_id: str
    annotator: Annotator
    verdict: str  # A | B | tie | unparsed  (canonical: 'A' means response_a is better)
    shown_order: str = "AB"  # AB: response_a was shown first; BA: response_b was shown first
    p_a: float | None = None  # P(response_a better), where the annotator gives one
    raw_output: str = ""
    latency_s: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost: float | None = None
    run_id: str | None = None  # the run that asked for the label (OAIF training, eval, ...)
    step: int | None = None
    cached: bool = False  # reused from the content-hash cache, not asked again
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} is not one of {VERDICTS}")
        if self.shown_order not in ORDERS:
            raise ValueError(f"shown_order {self.shown_order!r} is not one of {ORDERS}")


@dataclass
class Judgement:
    """What a labelling function returns for one pair: the combined verdict and its labels."""

    pair: Pair
    verdict: str  # combined over the orders asked: A | B | tie | unparsed
    p_a: float | None
    labels: list[Label]
    consistent: bool | None = None  # both orders agree (None when asked once)


# A trainer only ever receives this: a function that labels pairs.
LabelFn = Callable[[Sequence[Pair]], list[Judgement]]


def combine_orders(labels: Sequence[Label], tie_band: float = 0.0) -> tuple[str, float | None, bool | None]:
    """Combine per-order labels of one pair: average p_a where given, else vote.

    Returns (verdict, p_a, consistent). `consistent` is None for a single label.
    """
    usable = [l for l in labels if l.verdict != "unparsed"]
    if not usable:
        return "unparsed", None, (None if len(labels) < 2 else False)
    consistent = None if len(labels) < 2 else (len(usable) == len(labels) and len({l.verdict for l in usable}) == 1)
    ps = [l.p_a for l in usable if l.p_a is not None]
    if len(ps) == len(usable):
        p = sum(ps) / len(ps)
        if abs(p - 0.5) <= tie_band:
            return "tie", p, consistent
        return ("A" if p > 0.5 else "B"), p, consistent
    score = sum({"A": 1.0, "B": 0.0, "tie": 0.5}[l.verdict] for l in usable) / len(usable)
    verdict = "A" if score > 0.5 else "B" if score < 0.5 else "tie"
    return verdict, score, consistent
