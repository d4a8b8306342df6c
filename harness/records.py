"""The records every part of the harness exchanges: a pair to compare and a label on it.

Human and AI labels are the same record (FastChat's `play_a_match_pair` idea): a verdict on a
pair, the order it was shown in, the annotator (kind, id, version) and the raw output.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

VERDICTS = ("A", "B", "tie", "unparsed")
# simulated-human: judges/simulated.py (gold scorer + noise). Its own kind, never "human": the human
# majority, the human ceiling and human references select kind "human" only.
ANNOTATOR_KINDS = ("human", "simulated-human", "llm", "reward_model", "rule")
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

    @property
    def swapped_id(self) -> str:
        """The pair_id of the same comparison listed the other way round (B first)."""
        return content_hash(self.prompt, self.response_b, self.response_a)


# An imported comparison is one pair whichever order a record lists it in (issue 34): a record whose
# pair is the swap of one already read or stored is put onto that pair, its label flipped by these.
FLIP_VERDICT = {"A": "B", "B": "A", "tie": "tie", "unparsed": "unparsed"}
FLIP_ORDER = {"AB": "BA", "BA": "AB"}
SIDE_META = (("policy_a", "policy_b"), ("r_a", "r_b"))  # label meta keys that name response A / B


def flip_meta(meta: dict, from_pair: str, to_pair: str) -> dict:
    """A label's meta moved from pair `from_pair` to its swap `to_pair`: the side keys swapped, and
    the old pair id inside `item`/`dedup` (items named by the pair, e.g. generic rows without a
    record_id, summarize-feedback) replaced by the new one."""
    m = dict(meta)
    for a, b in SIDE_META:
        if a in m or b in m:
            m[a], m[b] = meta.get(b), meta.get(a)
    for key in ("item", "dedup"):
        if isinstance(m.get(key), str):
            m[key] = m[key].replace(from_pair, to_pair)
    return m


def unordered_item(prefix: str, model_a: str, model_b: str) -> str:
    """An item named by the two models compared, the same whichever a record lists first."""
    return ":".join([prefix, *sorted((model_a, model_b))])


@dataclass
class Annotator:
    kind: str  # human | simulated-human | llm | reward_model | rule
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


def flip_label(label: "Label", to_pair: str) -> "Label":
    """`label` of a pair, restated on its swap `to_pair`: verdict A<->B, p_a -> 1 - p_a, and the order
    shown stays true (what was shown first is now response B: 'AB' -> 'BA')."""
    return replace(label, pair_id=to_pair, verdict=FLIP_VERDICT[label.verdict],
                   p_a=None if label.p_a is None else 1.0 - label.p_a, shown_order=FLIP_ORDER[label.shown_order],
                   meta=flip_meta(label.meta, label.pair_id, to_pair))


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


def order_verdict(label: Label, tie_band: float = 0.0) -> str:
    """One label's verdict with the judge's tie band applied: |p_a - 0.5| <= tie_band is a tie."""
    if label.verdict != "unparsed" and label.p_a is not None and tie_band > 0 and abs(label.p_a - 0.5) <= tie_band:
        return "tie"
    return label.verdict


def combine_orders(labels: Sequence[Label], tie_band: float = 0.0,
                   inconsistent: str = "tie") -> tuple[str, float | None, bool | None]:
    """Combine the per-order labels of one pair: (verdict, p_a, consistent).

    The verdict follows the per-order verdicts only (the MT-Bench convention, default
    `inconsistent="tie"`): equal verdicts in every order are the verdict; verdicts that differ
    (A in one order and B in the other, or a tie in one) are a tie with consistent=False, so a
    judge that only follows the position never yields a decided label. FastChat does the same:
    `gen_judgment` asks both orders and `show_result` counts `g1_winner != g2_winner` as a tie.
    Logprob and generate judges therefore agree whenever their per-order verdicts agree.
    `inconsistent="mean"` is the old soft rule (sign of the mean p_a), for analyses that want it.

    p_a is the mean P(A better) over the orders when every parsed label gives one, else None: a
    vote is not a probability (the missing-EOS penalty and the soft loss must not read one). It
    stays on a tie too (`oaif.tie_policy: soft` with `loss.kind: soft` reads it).
    Unparsed: no order parsed; or, with several orders, some order unparsed: the verdict cannot be
    checked against the other order, so it is not guessed (FastChat would call it a tie).
    `consistent` is None for a single label.
    """
    if inconsistent not in ("tie", "mean"):
        raise ValueError(f"combine_orders: inconsistent must be tie or mean, got {inconsistent!r}")
    verdicts = [order_verdict(l, tie_band) for l in labels]
    usable = [l for l, v in zip(labels, verdicts) if v != "unparsed"]
    several = len(labels) >= 2
    consistent = (len(usable) == len(labels) and len(set(verdicts)) == 1) if several else None
    if not usable or len(usable) < len(labels):
        return "unparsed", None, consistent
    ps = [l.p_a for l in usable]
    p = sum(ps) / len(ps) if all(x is not None for x in ps) else None
    if consistent is not False:
        return verdicts[0], p, consistent
    if inconsistent == "mean" and p is not None:
        return ("tie" if abs(p - 0.5) <= tie_band else "A" if p > 0.5 else "B"), p, False
    return "tie", p, False


def order_inconsistent(judgement: Judgement) -> bool:
    """A pair whose parsed per-order verdicts disagree (a tie by the MT-Bench rule)."""
    labs = [l for l in judgement.labels if l.verdict != "unparsed"]
    return len(labs) == len(judgement.labels) >= 2 and judgement.consistent is False
