"""Importers of human (and published AI) preference labels into the label store.

ONE table below maps a format name to its reader; each reader module's docstring documents the
schema it reads and how records become pairs and labels. `import_labels` reads and validates the
whole input first (an error names the file, the line or record, and the field), then writes every
pair and label in one store transaction: a bad file imports nothing, and importing the same file
again adds nothing (each label's meta['dedup'] is its source record id).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Callable, Iterator

from . import arena, generic, hf, hh_rlhf, llmbar, llmeval2, mtbench_human, pandalm, summarize_feedback
from .common import LabelImportError

# format name -> reader(path, **options) -> Iterator[(Pair, Label)]. New formats go here and nowhere else.
IMPORTERS: dict[str, Callable[..., Iterator]] = {
    "hh-rlhf": hh_rlhf.read,
    "pandalm": pandalm.read,
    "llmbar": llmbar.read,
    "llmeval2": llmeval2.read,
    "mtbench-human": mtbench_human.read,
    "arena": arena.read,
    "summarize-feedback": summarize_feedback.read,
    "generic": generic.read,
    "hf": hf.read,
}


def record_of(label) -> str:
    """The source record a label came from: meta['record'] where one record is one vote, else the item."""
    return label.meta.get("record", label.meta["item"])


def read_labels(fmt: str, path: str | Path, limit: int | None = None, progress: bool = False, **options):
    """Read and validate everything: (pairs, labels) lists, the first `limit` records only if given."""
    if fmt not in IMPORTERS:
        raise ValueError(f"unknown label format {fmt!r}; known: {', '.join(IMPORTERS)}")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    pairs, labels, records = {}, [], set()
    reader = IMPORTERS[fmt](Path(path), **options)
    if progress:
        from tqdm import tqdm

        reader = tqdm(reader, desc=f"reading {fmt}", unit=" labels", disable=None)
    for pair, label in reader:
        record = record_of(label)
        if record not in records:
            if limit is not None and len(records) >= limit:
                break
            records.add(record)
        pairs.setdefault(pair.pair_id, pair)
        labels.append(label)
    return list(pairs.values()), labels


def import_labels(store, fmt: str, path: str | Path, limit: int | None = None, progress: bool = False,
                  **options) -> dict:
    """Validate, then write in one transaction. Returns the counts:

    {'format', 'path', 'records' (source records read), 'items' (compared items: a PandaLM or LLMBar
     record; the comparison several Arena/MT-Bench votes share), 'pairs' (distinct texts), 'labels',
     'new_pairs', 'new_labels', 'annotators': [{'annotator', 'kind', 'items', 'labels', 'new_labels'}]}
    """
    pairs, labels = read_labels(fmt, path, limit=limit, progress=progress, **options)
    if not labels:
        raise LabelImportError(path, "file", None, "no records")
    ids = [p.pair_id for p in pairs]
    with store.transaction() as db:
        before = store.annotator_label_counts(db)
        known = store.count_existing_pairs(ids, db)
        store.add_labels(labels, pairs, db=db)
        after = store.annotator_label_counts(db)
    per_records: dict[str, set] = {}
    per_labels: Counter = Counter()
    kinds = {}
    for lab in labels:
        a = lab.annotator
        per_records.setdefault(a.id, set()).add(lab.meta["item"])
        per_labels[a.id] += 1
        kinds[a.id] = a.kind
    rows = [{"annotator": a, "kind": kinds[a], "items": len(per_records[a]), "labels": per_labels[a],
             "new_labels": after.get(a, 0) - before.get(a, 0)} for a in sorted(per_labels)]
    return {"format": fmt, "path": str(path), "records": len({record_of(lab) for lab in labels}),
            "items": len({lab.meta["item"] for lab in labels}), "pairs": len(pairs), "labels": len(labels),
            "new_pairs": len(pairs) - known,
            "new_labels": sum(r["new_labels"] for r in rows), "annotators": rows}


__all__ = ["IMPORTERS", "LabelImportError", "import_labels", "read_labels"]
