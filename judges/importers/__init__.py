"""Importers of human (and published AI) preference labels into the label store.

ONE table below maps a format name to its reader; each reader module's docstring documents the
schema it reads and how records become pairs and labels. `import_labels` reads and validates the
whole input first (an error names the file, the line or record, and the field), then writes every
pair and label in one store transaction: a bad file imports nothing, and importing the same file
again adds nothing (each label's meta['dedup'] is its source record id).

Pair identity: a comparison is its prompt and the unordered pair of responses. A vote (a label with
meta 'record': one record is one vote on a comparison other records vote on too: MT-Bench,
summarize-feedback, generic, hf) whose record lists the responses the other way round from a pair
read earlier in the file, or already stored, is put onto that pair with its label restated
(records.flip_label: verdict A<->B, p_a -> 1 - p_a, shown_order and policies swapped, so the order
shown stays true on each label). The pair keeps the order in which it was first read or stored.
A record that is its own item (PandaLM, LLMBar, LLMEval2, hh-rlhf, Arena: no meta 'record') keeps its
own pair in the order its source lists: no item is split there, and per-record figures that depend
on the order (PandaLM's macro F1 over response1/response2/tie, LLMBar's swap=False accuracy) stay
the source's.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Callable, Iterator

from . import arena, generic, hf, hh_rlhf, llmbar, llmeval2, mtbench_human, pandalm, summarize_feedback
from harness.records import flip_label

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
    pairs, labels, records, asked = {}, [], set(), {}
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
        flipped = "record" in label.meta and pair.pair_id not in pairs and pair.swapped_id in pairs
        if flipped:
            label = flip_label(label, pair.swapped_id)  # the same comparison, read before in the other order
        else:
            pairs.setdefault(pair.pair_id, pair)
        key = (label.annotator.id, label.annotator.version, label.pair_id, label.shown_order, label.meta.get("dedup"))
        if flipped and key in asked:  # the store would keep only one of the two: say so instead
            raise LabelImportError(path, record, "shown_order",
                                   f"{label.annotator.id} labelled this comparison in the same position at "
                                   f"{asked[key]} (there with the responses listed the other way round)")
        asked.setdefault(key, record)
        labels.append(label)
    return list(pairs.values()), labels


def onto_stored_swaps(store, pairs: list, labels: list, db) -> tuple[list, list, int]:
    """Pairs of votes (module docstring) whose swap is already stored are dropped and their labels put
    onto the stored pair: (pairs, labels, how many pairs were stored swapped)."""
    stored = store.stored_pair_ids([p.pair_id for p in pairs] + [p.swapped_id for p in pairs], db)
    not_votes = {lab.pair_id for lab in labels if "record" not in lab.meta}
    onto = {p.pair_id: p.swapped_id for p in pairs
            if p.pair_id not in stored and p.swapped_id in stored and p.pair_id not in not_votes}
    if not onto:
        return pairs, labels, 0
    return ([p for p in pairs if p.pair_id not in onto],
            [flip_label(lab, onto[lab.pair_id]) if lab.pair_id in onto else lab for lab in labels], len(onto))


def import_labels(store, fmt: str, path: str | Path, limit: int | None = None, progress: bool = False,
                  **options) -> dict:
    """Validate, then write in one transaction. Returns the counts:

    {'format', 'path', 'records' (source records read), 'items' (compared items: a PandaLM or LLMBar
     record; the comparison several Arena/MT-Bench votes share), 'pairs' (distinct texts, a swapped
     listing counting once), 'labels',
     'new_pairs', 'new_labels', 'annotators': [{'annotator', 'kind', 'items', 'labels', 'new_labels'}]}
    """
    pairs, labels = read_labels(fmt, path, limit=limit, progress=progress, **options)
    if not labels:
        raise LabelImportError(path, "file", None, "no records")
    n_pairs = len(pairs)
    with store.transaction() as db:
        before = store.annotator_label_counts(db)
        pairs, labels, swapped = onto_stored_swaps(store, pairs, labels, db)
        known = store.count_existing_pairs([p.pair_id for p in pairs], db) + swapped
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
            "items": len({lab.meta["item"] for lab in labels}), "pairs": n_pairs, "labels": len(labels),
            "new_pairs": n_pairs - known,
            "new_labels": sum(r["new_labels"] for r in rows), "annotators": rows}


__all__ = ["IMPORTERS", "LabelImportError", "import_labels", "read_labels"]
