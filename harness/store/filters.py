"""Typed filters callers hand to the store (`Store.pairs_df`, `count_pairs`, `pair_ids`, `labels_df`,
`label_frame_rows`) instead of SQL: each filter becomes a WHERE clause and its parameters only here,
inside the store package (`_where`), so no module outside harness/store/ writes SQL.

Every value is a bound `?` parameter; the SQL text is what the callers wrote by hand before.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..records import ANNOTATOR_KINDS

# the annotator-kind filter: every kind on its own, so simulated-human is picked apart from human
KINDS = ANNOTATOR_KINDS
# people and their simulated stand-ins: not "AI annotators" for the disagreement label source
# (a position-biased simulated rater disagrees with itself across orders by design)
HUMANLIKE_KINDS = ("human", "simulated-human")

# pairs where the usable (not unparsed) verdicts of the annotators matched by `extra` differ
_DISAGREE = ("pair_id IN (SELECT pair_id FROM labels WHERE verdict!='unparsed'{extra}"
             " GROUP BY pair_id HAVING COUNT(DISTINCT verdict) > 1)")


def escape_like(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _marks(values) -> str:
    return ",".join("?" * len(values))


@dataclass
class PairFilter:
    """Pairs (the `pairs` table) to read; every field left at its default matches all pairs.

    The pair browser's fields: `annotator` / `kind` (a label by that annotator id / kind), `run_id`
    and `step` (the pair's own or one of its labels'), `dataset`, `subset`, `search` (a LIKE over the
    prompt and both responses), `disagreements_only` (usable verdicts differ). The other callers':
    `source`, `pair_ids`, `pair_run_id` / `pair_step` (the pair's own run and step only),
    `not_labelled_by` (an annotator id with no label on the pair) and `ai_disagreements_only` (the
    usable verdicts of AI annotators, neither humans nor simulated humans, differ)."""

    disagreements_only: bool = False
    annotator: str | None = None
    kind: str | None = None  # one of KINDS: pairs with a label of that annotator kind
    run_id: str | None = None
    step: int | None = None
    dataset: str | None = None
    subset: str | None = None
    search: str = ""
    source: str | None = None
    pair_ids: Sequence[str] | None = None
    pair_run_id: str | None = None
    pair_step: int | None = None
    not_labelled_by: str | None = None
    ai_disagreements_only: bool = False

    def _where(self) -> tuple[str, list]:
        """SQL over the `pairs` table and its parameters (never string-formatted user input)."""
        clauses, params = ["1=1"], []
        if self.not_labelled_by is not None:
            clauses.append("pair_id NOT IN (SELECT pair_id FROM labels WHERE annotator_id=?)")
            params.append(self.not_labelled_by)
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
        if self.source is not None:
            clauses.append("source=?")
            params.append(self.source)
        if self.dataset:
            clauses.append("dataset=?")
            params.append(self.dataset)
        if self.subset:
            clauses.append("subset=?")
            params.append(self.subset)
        if self.pair_run_id is not None:
            clauses.append("run_id=?")
            params.append(self.pair_run_id)
        if self.pair_step is not None:
            clauses.append("step=?")
            params.append(self.pair_step)
        if self.pair_ids is not None:
            ids = list(self.pair_ids)
            clauses.append(f"pair_id IN ({_marks(ids)})" if ids else "1=0")
            params += ids
        if self.ai_disagreements_only:
            clauses.append(_DISAGREE.format(extra=" AND annotator_kind NOT IN ("
                                                   + ",".join(f"'{k}'" for k in HUMANLIKE_KINDS) + ")"))
        if self.search:
            clauses.append("(prompt LIKE ? ESCAPE '\\' OR response_a LIKE ? ESCAPE '\\' OR response_b LIKE ? ESCAPE '\\')")
            params += [f"%{escape_like(self.search)}%"] * 3
        return " AND ".join(clauses), params


@dataclass
class LabelFilter:
    """Labels (joined with their pairs: `l` the label, `p` the pair) to read; defaults match all.

    `annotators`: annotator ids; `kinds`: annotator kinds; `pair_ids`; `dataset` (the pair's);
    `run_id` / `step` (the label's); `verdicts`: only these verdicts; `cached`: False leaves out
    cache-hit copies, True keeps only them."""

    annotators: Sequence[str] | None = None
    kinds: Sequence[str] | None = None
    pair_ids: Sequence[str] | None = None
    dataset: str | None = None
    run_id: str | None = None
    step: int | None = None
    verdicts: Sequence[str] | None = None
    cached: bool | None = None

    def _where(self) -> tuple[str, list]:
        clauses, params = [], []
        for col, values in (("l.annotator_id", self.annotators), ("l.annotator_kind", self.kinds),
                            ("l.pair_id", self.pair_ids), ("l.verdict", self.verdicts)):
            if values is not None:
                values = list(values)
                clauses.append(f"{col} IN ({_marks(values)})" if values else "1=0")
                params += values
        if self.cached is not None:
            clauses.append(f"l.cached = {int(bool(self.cached))}")
        if self.dataset is not None:
            clauses.append("p.dataset=?")
            params.append(self.dataset)
        if self.run_id is not None:
            clauses.append("l.run_id=?")
            params.append(self.run_id)
        if self.step is not None:
            clauses.append("l.step=?")
            params.append(int(self.step))
        return " AND ".join(clauses) or "1=1", params


def where_of(flt, kind: type) -> tuple[str, list]:
    """The (sql, params) of a filter of `kind` (None: an empty one); anything else is refused."""
    if flt is None:
        flt = kind()
    if not isinstance(flt, kind):
        raise TypeError(f"expected a {kind.__name__} (harness.store.filters), not {type(flt).__name__}: "
                        "callers pass typed filters, not SQL")
    return flt._where()
