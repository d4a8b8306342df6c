"""The WHERE clauses the pair browser and the label page pass to `Store.pairs_df` / `count_pairs`,
and the labelling logic (validation, shown order, the human `Label`). No Streamlit in here, so the
tests call it directly too.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from harness.records import ANNOTATOR_KINDS, Annotator, Label, Pair

MAX_NAME = 64
MAX_SEARCH = 200
MAX_COMMENT = 1000
NAME_RE = re.compile(r"^[\w .@'-]+$", re.UNICODE)
HUMAN_VERSION = "dashboard-v1"
CHOICES = ("A", "B", "tie", "skip")
# the annotator-kind filter: every kind on its own, so simulated-human is picked apart from human
KINDS = ANNOTATOR_KINDS
# people and their simulated stand-ins: not "AI annotators" for the disagreement label source
# (a position-biased simulated rater disagrees with itself across orders by design)
HUMANLIKE_KINDS = ("human", "simulated-human")

# pairs where the usable (not unparsed) verdicts of the annotators matched by `extra` differ
_DISAGREE = ("pair_id IN (SELECT pair_id FROM labels WHERE verdict!='unparsed'{extra}"
             " GROUP BY pair_id HAVING COUNT(DISTINCT verdict) > 1)")


@dataclass
class PairFilter:
    disagreements_only: bool = False
    annotator: str | None = None
    kind: str | None = None  # one of KINDS: pairs with a label of that annotator kind
    run_id: str | None = None
    step: int | None = None
    dataset: str | None = None
    subset: str | None = None
    search: str = ""

    def where(self) -> tuple[str, list]:
        """SQL over the `pairs` table and its parameters (never string-formatted user input)."""
        clauses, params = ["1=1"], []
        if self.disagreements_only:
            clauses.append(_DISAGREE.format(extra=""))
        if self.annotator:
            clauses.append("pair_id IN (SELECT pair_id FROM labels WHERE annotator_id=?)")
            params.append(self.annotator)
        if self.kind:
            if self.kind not in KINDS:
                raise ValueError(f"annotator kind {self.kind!r} is not one of {KINDS}")
            clauses.append("pair_id IN (SELECT pair_id FROM labels WHERE annotator_kind=?)")
            params.append(self.kind)
        if self.run_id:
            clauses.append("(run_id=? OR pair_id IN (SELECT pair_id FROM labels WHERE run_id=?))")
            params += [self.run_id, self.run_id]
        if self.step is not None:
            clauses.append("(step=? OR pair_id IN (SELECT pair_id FROM labels WHERE step=?"
                           + (" AND run_id=?" if self.run_id else "") + "))")
            params += [int(self.step), int(self.step)] + ([self.run_id] if self.run_id else [])
        if self.dataset:
            clauses.append("dataset=?")
            params.append(self.dataset)
        if self.subset:
            clauses.append("subset=?")
            params.append(self.subset)
        if self.search:
            clauses.append("(prompt LIKE ? ESCAPE '\\' OR response_a LIKE ? ESCAPE '\\' OR response_b LIKE ? ESCAPE '\\')")
            params += [f"%{escape_like(self.search)}%"] * 3
        return " AND ".join(clauses), params


def escape_like(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


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
def source_where(source: str, annotator_id: str) -> tuple[str, list]:
    """Pairs of a label source that this person has not labelled yet.

    source: "dataset:<name>" or "dataset:<name>/<subset>", "run:<run_id>" (pairs the run stored),
    or "disagree" (pairs where AI annotators, i.e. neither humans nor simulated humans, disagree).
    """
    clauses, params = ["pair_id NOT IN (SELECT pair_id FROM labels WHERE annotator_id=?)"], [annotator_id]
    kind, _, rest = source.partition(":")
    if kind == "dataset":
        name, _, subset = rest.partition("/")
        clauses.append("dataset=?")
        params.append(name)
        if subset:
            clauses.append("subset=?")
            params.append(subset)
    elif kind == "run":
        clauses.append("run_id=?")
        params.append(rest)
    elif kind == "disagree":
        clauses.append(_DISAGREE.format(extra=" AND annotator_kind NOT IN ("
                                               + ",".join(f"'{k}'" for k in HUMANLIKE_KINDS) + ")"))
    else:
        raise ValueError(f"unknown label source {source!r}")
    return " AND ".join(clauses), params


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


def draw_ids(rows: list[dict], k: int, rng: random.Random) -> list[str]:
    """Up to k pair ids drawn without replacement from the rows of SOURCE_IDS_SQL."""
    ids = [r["pair_id"] for r in rows]
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


# -- option lists for the filters (run through `Store.query`, cached by the page) -----------------
DATASETS_SQL = "SELECT DISTINCT dataset, subset FROM pairs WHERE dataset IS NOT NULL ORDER BY dataset, subset"
RUNS_SQL = ("SELECT run_id FROM pairs WHERE run_id IS NOT NULL UNION"
            " SELECT run_id FROM labels WHERE run_id IS NOT NULL ORDER BY run_id")
STEPS_SQL = ("SELECT step FROM pairs WHERE run_id=? AND step IS NOT NULL UNION"
             " SELECT step FROM labels WHERE run_id=? AND step IS NOT NULL ORDER BY step")
SAMPLE_RUNS_SQL = "SELECT DISTINCT run_id FROM samples ORDER BY run_id"
# ids in a fixed order; the page draws from them with its seedable rng (SQLite's random() is not)
SOURCE_IDS_SQL = "SELECT pair_id FROM pairs WHERE {where} ORDER BY pair_id"
HUMAN_COUNT_SQL = "SELECT COUNT(*) AS n FROM labels WHERE annotator_id=?"
HUMAN_DONE_SQL = "SELECT pair_id FROM labels WHERE annotator_id=?"
