"""Migration 4: one pair per imported comparison, whatever order its records listed the responses in.

Before version 4 an import stored a record listing the responses the other way round from an earlier
one as a second pair (MT-Bench human judgments list a question/turn/model pair with model_a and
model_b swapped), and the MT-Bench importer named the item by the models in record order, so the
votes on one comparison fell on two pairs and two items. This brings a store to what today's
importers (judges/importers/__init__.py) write:

- Two stored pairs with one prompt whose responses are each other's swap, at least one of them a
  pair of imported votes (source 'dataset:*', labels an importer wrote, each with meta 'record': one
  record one vote, as judges/importers/__init__.py merges them): that one is merged into the other;
  of two such, the later (by first label) into the earlier, the pair an import reads first. Pairs
  made by training, eval or leaderboard builds, and pairs of records that are their own item
  (PandaLM, LLMBar, ...: no meta 'record'), are never merged away: their ids stay.
- Every label of a merged pair moves to the pair kept, restated (verdict A<->B, p_a -> 1 - p_a,
  shown_order and policies swapped: records.flip_label's rules); its cache and dedup keys are
  recomputed (keys.py); label_changes of it are restated the same way (their label ids stay).
- MT-Bench items ('mt_bench_human:<q>:<turn>:<model_a>:<model_b>') get the two models sorted
  (records.unordered_item), on the imported labels and on the judge labels that copied them.
Every label is kept: where a moved label would repeat another's dedup key (a judge asked the same
presentation on both pairs), its meta['dedup'] gets ':merged:<label_id>' so it stays a row of its own.
Runs inside migrate()'s exclusive lock and transaction, on SQLite and PostgreSQL alike.
"""
from __future__ import annotations

import json

from ..records import FLIP_ORDER, FLIP_VERDICT, content_hash, flip_meta, unordered_item
from .keys import cache_key, dedup_key

IMPORT_META = ("dedup", "item", "dataset")  # what judges.importers.common.make_label puts on every label
# dataset -> the annotator id prefix of the importer that named the models of an item in record order
ORDERED_ITEMS = {"mt_bench_human": "mtbench-human:"}

_LABEL_COLUMNS = ("label_id, pair_id, annotator_id, annotator_version, verdict, p_a, shown_order, run_id, step,"
                  " meta_json, dedup_key")


def _in(db, sql: str, values) -> list:
    """Rows of `sql` whose `{marks}` is an IN list, in chunks (SQLite caps bound parameters)."""
    values, rows = list(dict.fromkeys(values)), []
    for i in range(0, len(values), 500):
        chunk = values[i:i + 500]
        rows += db.execute(sql.format(marks=",".join("?" * len(chunk))), chunk).fetchall()
    return rows


def _flip_p(p):
    return None if p is None else 1.0 - p


def _merges(db) -> tuple[dict[str, str], list]:
    """(dropped pair -> pair kept, the label rows of every pair of a swapped couple)."""
    imported = {r[0]: content_hash(r[1], r[3], r[2]) for r in db.execute(
        "SELECT pair_id, prompt, response_a, response_b FROM pairs WHERE source LIKE 'dataset:%'").fetchall()}
    swaps = {pid: sid for pid, sid in imported.items() if sid != pid}
    stored = {r[0] for r in _in(db, "SELECT pair_id FROM pairs WHERE pair_id IN ({marks})", swaps.values())}
    couples = {tuple(sorted((pid, sid))) for pid, sid in swaps.items() if sid in stored}
    members = [p for c in couples for p in c]
    rows = _in(db, f"SELECT {_LABEL_COLUMNS} FROM labels WHERE pair_id IN ({{marks}})", members)
    first, votes, records = {}, set(), set()
    for r in rows:
        first[r[1]] = min(first.get(r[1], r[0]), r[0])
        meta = json.loads(r[9] or "{}")
        if r[1] in imported and r[7] is None and all(k in meta for k in IMPORT_META):
            (votes if "record" in meta else records).add(r[1])
    mergeable = votes - records
    moves = {}
    for p, q in couples:
        if p in mergeable and q in mergeable:
            keep, drop = sorted((p, q), key=lambda x: first[x])
        elif p in mergeable or q in mergeable:
            drop, keep = (p, q) if p in mergeable else (q, p)
        else:
            continue  # neither holds imported votes (e.g. two leaderboard builds, two PandaLM records)
        moves[drop] = keep
    return moves, rows


def _item_renames(rows) -> dict[str, str]:
    """Old MT-Bench items (models in record order) -> the item with the models sorted."""
    out = {}
    for r in rows:
        meta = json.loads(r[9] or "{}")
        item, pa, pb = meta.get("item"), meta.get("policy_a"), meta.get("policy_b")
        prefix = ORDERED_ITEMS.get(meta.get("dataset"))
        if prefix and r[2].startswith(prefix) and isinstance(item, str) and pa and pb and item.endswith(f":{pa}:{pb}"):
            new = unordered_item(item[:-len(f":{pa}:{pb}")], pa, pb)
            if new != item:
                out[item] = new
    return out


def merge_swapped_pairs(backend, db) -> None:
    """Migration 4 (module docstring), in the open transaction `db`."""
    moves, rows = _merges(db)
    item_sql, seen = backend.json_text("meta_json", "item"), {r[0] for r in rows}
    for ds in ORDERED_ITEMS:  # the labels naming an old MT-Bench item, judge labels that copied it included
        more = db.execute(f"SELECT {_LABEL_COLUMNS} FROM labels WHERE {item_sql} LIKE ?", (f"{ds}:%",)).fetchall()
        rows += [r for r in more if r[0] not in seen]
        seen |= {r[0] for r in more}
    renames = _item_renames(rows)
    updates, in_use, moved = [], set(), []
    for r in sorted(rows, key=lambda r: r[0]):
        label_id, pid, ann, version, verdict, p_a, order, run_id, step, meta_json, old_key = r
        meta = json.loads(meta_json or "{}")
        if pid in moves:
            meta = flip_meta(meta, pid, moves[pid])
            pid, verdict, p_a, order = moves[pid], FLIP_VERDICT[verdict], _flip_p(p_a), FLIP_ORDER[order]
            moved.append(label_id)
        old_item = meta.get("item")
        if old_item in renames:
            meta["item"] = renames[old_item]
            if isinstance(meta.get("dedup"), str) and meta["dedup"].startswith(old_item):
                meta["dedup"] = renames[old_item] + meta["dedup"][len(old_item):]
        if pid == r[1] and meta == json.loads(meta_json or "{}"):
            in_use.add(old_key)
            continue
        updates.append([label_id, pid, ann, version, verdict, p_a, order, run_id, step, meta])
    rows_out = []
    for label_id, pid, ann, version, verdict, p_a, order, run_id, step, meta in updates:
        cache = cache_key(ann, version, pid, order)
        key = dedup_key(cache, run_id, step, meta.get("dedup", ""))
        if key in in_use:  # the same question asked on both pairs: keep both rows
            meta["dedup"] = f"{meta.get('dedup', '')}:merged:{label_id}"
            key = dedup_key(cache, run_id, step, meta["dedup"])
        in_use.add(key)
        rows_out.append((pid, verdict, p_a, order, json.dumps(meta, allow_nan=False), cache, key, label_id))
    # two passes: a final key may be the current key of a label that changes later in the list
    db.executemany("UPDATE labels SET dedup_key=? WHERE label_id=?", [(f"migrating:{r[-1]}", r[-1]) for r in rows_out])
    db.executemany("UPDATE labels SET pair_id=?, verdict=?, p_a=?, shown_order=?, meta_json=?, cache_key=?,"
                   " dedup_key=? WHERE label_id=?", rows_out)
    changes = _in(db, "SELECT change_id, old_verdict, new_verdict, old_p_a, new_p_a FROM label_changes"
                      " WHERE label_id IN ({marks})", moved)
    db.executemany("UPDATE label_changes SET old_verdict=?, new_verdict=?, old_p_a=?, new_p_a=? WHERE change_id=?",
                   [(FLIP_VERDICT[c[1]], FLIP_VERDICT[c[2]], _flip_p(c[3]), _flip_p(c[4]), c[0]) for c in changes])
    db.executemany("DELETE FROM pairs WHERE pair_id=?", [(p,) for p in moves])
    db.execute("INSERT OR IGNORE INTO meta VALUES ('migration_4', ?)",
               (json.dumps({"pairs_merged": len(moves), "labels_moved": len(moved), "items_renamed": len(renames),
                            "labels_updated": len(rows_out)}),))
