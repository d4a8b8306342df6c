"""Generic labels: JSON lines (.jsonl), a JSON array (.json) or CSV/TSV with a header row.

One row = one verdict of one annotator on one pair.
Required columns:
  prompt, response_a, response_b   the pair (response_a is 'A')
  label                            A | B | tie | unparsed (case-insensitive): which response is better
Optional columns:
  annotator          annotator id (default 'generic:<file stem>'); several annotators may share a file
  annotator_kind     human | llm | reward_model | rule (default human). Not simulated-human: those
                     labels come only from judges/simulated.py (a `kind: simulated_human` judge),
                     whose version pins the noise parameters and the gold scorer; a file cannot
                     show that, and real labels marked simulated would leak into the simulated ceiling
  annotator_version  default 'generic'
  shown_order        AB (response_a shown first, default) | BA
  order_known        true | false (default true): whether shown_order is really known
  p_a                probability that response_a is better, in [0, 1]
  record_id          id of the compared item; rows with the same dataset and record_id are the same
                     item for agreement statistics (default: the pair's content hash)
  dataset, subset    default dataset 'generic'
  policy_a, policy_b models/runs that wrote the responses (used by the leaderboard)
  reference          reference answer
  raw_output         the annotator's raw output (default: the label)
Each (annotator, item, shown_order) may occur once per file; that triple is also what makes a
second import of the same file add nothing. A row listing an earlier row's (or a stored pair's)
responses the other way round is put onto that pair, its label restated (judges/importers/__init__.py):
label, p_a, shown_order and policies swapped, and its default item is that pair's hash.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

from harness.records import ANNOTATOR_KINDS, Annotator, Pair

from .common import Fields, iter_records, make_label

LABELS = {"a": "A", "b": "B", "tie": "tie", "unparsed": "unparsed"}
NOT_IMPORTED = ("simulated-human",)  # produced by judges/simulated.py only (module docstring)
IMPORT_KINDS = tuple(k for k in ANNOTATOR_KINDS if k not in NOT_IMPORTED)
BOOL = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def read(path: str | Path, **_) -> Iterator:
    path = Path(path)
    return read_records(path, iter_records(path))


def read_records(path: Path, records: Iterable[tuple[str, dict]]) -> Iterator:
    """The rows of one source (`where`, record) as (pair, label); `path` names it in errors and ids."""
    default_annotator = f"generic:{path.name.split('.')[0]}"
    annotators: dict[tuple, Annotator] = {}
    seen: dict[tuple, str] = {}
    for where, rec in records:
        f = Fields(path, where, rec)
        label = f.get("label", str)
        if label.strip().lower() not in LABELS:
            raise f.error("label", f"{label!r} is not one of A, B, tie, unparsed")
        verdict = LABELS[label.strip().lower()]
        kind = f.get("annotator_kind", str, required=False, default="human")
        if kind in NOT_IMPORTED:
            raise f.error("annotator_kind", f"{kind!r} labels are not imported: they come from a simulated rater "
                                            "(judges/simulated.py, e.g. `harness judge --judge sim-rater-1`)")
        if kind not in IMPORT_KINDS:
            raise f.error("annotator_kind", f"{kind!r} is not one of {', '.join(map(repr, IMPORT_KINDS))}")
        ann_id = f.get("annotator", str, required=False, default=default_annotator)
        version = str(f.get("annotator_version", (str, int), required=False, default="generic"))
        order = f.get("shown_order", str, required=False, default="AB", choices=("AB", "BA"))
        known = f.get("order_known", (str, bool), required=False, default=True)
        if isinstance(known, str):
            if known.strip().lower() not in BOOL:
                raise f.error("order_known", f"{known!r} is not true/false")
            known = BOOL[known.strip().lower()]
        p_a = f.get("p_a", (int, float, str), required=False)
        if p_a is not None:
            try:
                p_a = float(p_a)
            except ValueError:
                raise f.error("p_a", f"{p_a!r} is not a number") from None
            if not 0.0 <= p_a <= 1.0:
                raise f.error("p_a", f"{p_a} is not in [0, 1]")
        dataset = f.get("dataset", str, required=False, default="generic")
        record_id = f.get("record_id", (str, int), required=False)
        pair = Pair(prompt=f.get("prompt", str, nonempty=True), response_a=f.get("response_a", str),
                    response_b=f.get("response_b", str), source=f"dataset:{dataset}", dataset=dataset,
                    subset=f.get("subset", str, required=False),
                    record_id=None if record_id is None else str(record_id),
                    policy_a=f.get("policy_a", str, required=False), policy_b=f.get("policy_b", str, required=False),
                    reference=f.get("reference", str, required=False))
        item = f"{dataset}:{record_id}" if record_id is not None else pair.pair_id
        key = (ann_id, version, item, order)
        if key in seen:
            raise f.error("annotator", f"{ann_id} already labelled item {item} in order {order} at {seen[key]}")
        seen[key] = where
        if (ann_id, version) not in annotators:
            annotators[(ann_id, version)] = Annotator(kind, ann_id, version)
        elif annotators[(ann_id, version)].kind != kind:
            raise f.error("annotator_kind", f"{ann_id} was {annotators[(ann_id, version)].kind} on an earlier row")
        raw = f.get("raw_output", str, required=False, default=label)
        yield pair, make_label(pair, annotators[(ann_id, version)], verdict, item, shown_order=order,
                               order_known=known, raw_output=raw, p_a=p_a, record=f"{path.name}:{where}")
