"""The filters the pair browser and the label page pass to `Store.pairs_df` / `count_pairs` /
`pair_ids` (`PairFilter`, from harness.store.filters; `source_filter`), and the labelling logic
(validation, shown order, the human `Label`). No Streamlit in here, so the tests call it directly too.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from harness.records import Annotator, Label, Pair
# the pair filter lives with the store, which alone turns it into SQL; re-exported for the pages
from harness.store.filters import HUMANLIKE_KINDS, KINDS, PairFilter, escape_like

_REEXPORTED = (HUMANLIKE_KINDS, KINDS, PairFilter, escape_like)

MAX_NAME = 64
MAX_SEARCH = 200
MAX_COMMENT = 1000
NAME_RE = re.compile(r"^[\w .@'-]+$", re.UNICODE)
HUMAN_VERSION = "dashboard-v1"
CHOICES = ("A", "B", "tie", "skip")
def check_search(text: str) -> str | None:
    """The message to show for a bad search string, or None."""
    if len(text) > MAX_SEARCH:
        return f"Search text is {len(text)} characters; at most {MAX_SEARCH} are allowed."
    return None


def check_name(name: str) -> str | None:
    """The message to show for a bad labeller name, or None when it is fine."""
    name = (name or "").strip()
    if not name:
        return "Enter your name to start labelling."
    if len(name) > MAX_NAME:
        return f"The name is {len(name)} characters; at most {MAX_NAME} are allowed."
    if not NAME_RE.match(name):
        return "Use letters, digits, spaces and . @ ' - _ in the name."
    return None


def check_comment(text: str) -> str | None:
    if len(text or "") > MAX_COMMENT:
        return f"The comment is {len(text)} characters; at most {MAX_COMMENT} are allowed."
    return None


def human_annotator(name: str) -> Annotator:
    return Annotator(kind="human", id=f"human:{name.strip()}", version=HUMAN_VERSION)


# -- where the label page takes pairs from ---------------------------------------------------------
def source_filter(source: str, annotator_id: str) -> PairFilter:
    """Pairs of a label source that this person has not labelled yet.

    source: "dataset:<name>" or "dataset:<name>/<subset>", "run:<run_id>" (pairs the run stored),
    or "disagree" (pairs where AI annotators, i.e. neither humans nor simulated humans, disagree).
    """
    kind, _, rest = source.partition(":")
    if kind == "dataset":
        name, _, subset = rest.partition("/")
        return PairFilter(not_labelled_by=annotator_id, dataset=name, subset=subset or None)
    if kind == "run":
        return PairFilter(not_labelled_by=annotator_id, pair_run_id=rest)
    if kind == "disagree":
        return PairFilter(not_labelled_by=annotator_id, ai_disagreements_only=True)
    raise ValueError(f"unknown label source {source!r}")


def pairs_from_samples(samples, run_id: str, limit: int = 500) -> list[Pair]:
    """Pairs from a run's samples: two responses to the same prompt at the same step."""
    out: list[Pair] = []
    if samples is None or len(samples) == 0:
        return out
    for (step, prompt), g in samples.groupby(["step", "prompt"], sort=True):
        responses = list(dict.fromkeys(g["response"].tolist()))
        for a, b in zip(responses[0::2], responses[1::2]):
            out.append(Pair(prompt=prompt, response_a=a, response_b=b, source=f"run:{run_id}", run_id=run_id,
                            step=int(step), policy_a=run_id, policy_b=run_id, meta={"from": "samples"}))
            if len(out) >= limit:
                return out
    return out


@dataclass
class Shown:
    """A pair as shown to a person: which response is on the left."""

    pair: Pair
    shown_order: str  # AB: response_a on the left; BA: response_b on the left

    @property
    def left(self) -> str:
        return self.pair.response_a if self.shown_order == "AB" else self.pair.response_b

    @property
    def right(self) -> str:
        return self.pair.response_b if self.shown_order == "AB" else self.pair.response_a


def draw_ids(rows: list, k: int, rng: random.Random) -> list[str]:
    """Up to k pair ids drawn without replacement from `Store.pair_ids` (ids in a fixed order; the
    page draws with its seedable rng) or rows with a pair_id."""
    ids = [r["pair_id"] if isinstance(r, dict) else r for r in rows]
    return rng.sample(ids, min(k, len(ids)))


def shuffle_queue(pairs: list[Pair], rng: random.Random) -> list[Shown]:
    """Random pair order and a random side for each pair (the order is recorded with the label)."""
    pairs = list(pairs)
    rng.shuffle(pairs)
    return [Shown(p, rng.choice(("AB", "BA"))) for p in pairs]


def make_label(shown: Shown, name: str, choice: str, comment: str = "", session: str = "") -> Label:
    """The person's choice in shown terms ('A' = left) -> a canonical Label ('A' = response_a)."""
    if choice not in ("A", "B", "tie"):
        raise ValueError(f"choice {choice!r} is not A, B or tie")
    if choice == "tie":
        verdict = "tie"
    elif shown.shown_order == "AB":
        verdict = choice
    else:
        verdict = "B" if choice == "A" else "A"
    meta = {"via": "dashboard", "session": session}
    if comment.strip():
        meta["comment"] = comment.strip()
    return Label(pair_id=shown.pair.pair_id, annotator=human_annotator(name), verdict=verdict,
                 shown_order=shown.shown_order, p_a={"A": 1.0, "B": 0.0, "tie": 0.5}[verdict],
                 raw_output={"A": "left", "B": "right", "tie": "tie"}[choice], meta=meta)


@dataclass
class Tally:
    written: int = 0
    duplicates: int = 0
    skipped: int = 0
    history: list = field(default_factory=list)
