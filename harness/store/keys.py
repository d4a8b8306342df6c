"""The two keys a stored label carries, in one place: the Store writes them (add_labels) and migration 4
(pair_identity.py) recomputes them for the labels it moves, so both always agree."""
from __future__ import annotations

from ..records import content_hash


def cache_key(annotator_id: str, version: str, pair_id: str, shown_order: str) -> str:
    """Same annotator (id + version), same pair, same order -> same answer can be reused."""
    return content_hash(annotator_id, version, pair_id, shown_order)


def dedup_key(cache: str, run_id: str | None, step: int | None, dedup: str) -> str:
    """What makes a label the same stored row: its cache key, run, step and meta['dedup'] (the source
    record of an import; '' when none), so importing or resuming twice adds nothing."""
    return content_hash(cache, run_id, step, dedup)
