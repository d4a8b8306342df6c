"""The store's schema: the DDL of version 1 (_SCHEMA) and MIGRATIONS, the ordered registry
version -> step that brings a store from the version before it: DDL text, or a function
`step(backend, db)` where rows must change (4: pair_identity.merge_swapped_pairs). `migrate` creates a
fresh store at SCHEMA_VERSION or applies each pending migration in order, recording schema_version and
migrated_from in meta; a store newer than this code is refused."""
from __future__ import annotations

from .pair_identity import merge_swapped_pairs


class StoreError(RuntimeError):
    pass


SCHEMA_VERSION = 4

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY, name TEXT, algo TEXT NOT NULL, task TEXT, status TEXT NOT NULL,
  created_at REAL NOT NULL, updated_at REAL NOT NULL, config_json TEXT NOT NULL,
  last_step INTEGER NOT NULL DEFAULT 0, last_metrics_json TEXT, group_name TEXT, note TEXT
);
CREATE TABLE IF NOT EXISTS metrics (
  run_id TEXT NOT NULL, step INTEGER NOT NULL, split TEXT NOT NULL DEFAULT 'train',
  data_json TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (run_id, step, split)
);
CREATE TABLE IF NOT EXISTS pairs (
  pair_id TEXT PRIMARY KEY, prompt TEXT NOT NULL, response_a TEXT NOT NULL, response_b TEXT NOT NULL,
  source TEXT, dataset TEXT, subset TEXT, record_id TEXT, run_id TEXT, step INTEGER,
  policy_a TEXT, policy_b TEXT, reference TEXT, meta_json TEXT, created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS pairs_dataset ON pairs(dataset, subset);
CREATE INDEX IF NOT EXISTS pairs_run ON pairs(run_id, step);
CREATE TABLE IF NOT EXISTS annotators (
  annotator_id TEXT NOT NULL, version TEXT NOT NULL, kind TEXT NOT NULL, config_json TEXT,
  created_at REAL NOT NULL, PRIMARY KEY (annotator_id, version)
);
CREATE TABLE IF NOT EXISTS labels (
  label_id INTEGER PRIMARY KEY AUTOINCREMENT,
  dedup_key TEXT NOT NULL UNIQUE,
  cache_key TEXT NOT NULL,
  pair_id TEXT NOT NULL REFERENCES pairs(pair_id),
  annotator_kind TEXT NOT NULL, annotator_id TEXT NOT NULL, annotator_version TEXT NOT NULL,
  verdict TEXT NOT NULL, p_a REAL, shown_order TEXT NOT NULL, raw_output TEXT,
  latency_s REAL, tokens_in INTEGER, tokens_out INTEGER, cost REAL,
  run_id TEXT, step INTEGER, cached INTEGER NOT NULL DEFAULT 0, meta_json TEXT, created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS labels_pair ON labels(pair_id);
CREATE INDEX IF NOT EXISTS labels_annotator ON labels(annotator_id);
CREATE INDEX IF NOT EXISTS labels_cache ON labels(cache_key);
CREATE INDEX IF NOT EXISTS labels_run ON labels(run_id, step);
CREATE TABLE IF NOT EXISTS samples (
  sample_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, step INTEGER NOT NULL, prompt TEXT NOT NULL,
  response TEXT NOT NULL, policy TEXT, n_tokens INTEGER, truncated INTEGER, reward REAL,
  meta_json TEXT, created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_run ON samples(run_id, step);
CREATE TABLE IF NOT EXISTS results (
  result_id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, name TEXT, run_id TEXT,
  task TEXT, judge TEXT, baseline TEXT, result_json TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS results_kind ON results(kind);
"""


# version -> the DDL (or function) that brings a store from the version before it; a store of any older
# version is migrated when it is opened (the base _SCHEMA is version 1), under migrate()'s exclusive lock.
MIGRATIONS = {
    2: """
CREATE TABLE IF NOT EXISTS raters (
  rater_id TEXT PRIMARY KEY, display_name TEXT NOT NULL, password_hash TEXT NOT NULL,
  role TEXT NOT NULL DEFAULT 'rater', created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS label_changes (
  change_id INTEGER PRIMARY KEY AUTOINCREMENT, label_id INTEGER NOT NULL REFERENCES labels(label_id),
  rater_id TEXT NOT NULL, old_verdict TEXT NOT NULL, new_verdict TEXT NOT NULL, old_p_a REAL, new_p_a REAL,
  changed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS label_changes_label ON label_changes(label_id);
CREATE INDEX IF NOT EXISTS labels_kind_pair ON labels(annotator_kind, pair_id);
""",
    # 3: indexes of the typed filters: a rater's / an annotator's labels of given pairs, the pairs of a
    # source (+ dataset), the results of a run
    3: """
CREATE INDEX IF NOT EXISTS labels_annotator_pair ON labels(annotator_id, pair_id);
CREATE INDEX IF NOT EXISTS pairs_source ON pairs(source, dataset);
CREATE INDEX IF NOT EXISTS results_run ON results(run_id);
""",
    # 4: one pair per imported comparison whichever order its records listed the responses in; the
    # duplicate pairs of older imports merge, every label kept (pair_identity.py)
    4: merge_swapped_pairs,
}
assert sorted(MIGRATIONS) == list(range(2, SCHEMA_VERSION + 1)), "one migration per version, in order"


def stored_version(backend, db) -> int | None:
    """The schema version a store records (None for a fresh database)."""
    if not backend.has_table(db, "meta"):
        return None
    row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return int(row[0]) if row is not None else None


def migrate(backend, db, where) -> None:
    """Bring the store open on `db` to SCHEMA_VERSION (`where` names it in errors).

    A current store runs no DDL: CREATE INDEX locks its table even when the index exists, and DDL
    locking tables in another order than a writer's inserts deadlocks on PostgreSQL. Creating or
    migrating holds the backend's exclusive lock, so of processes opening one store at once, one
    migrates and the others find it done."""
    found = stored_version(backend, db)
    if found == SCHEMA_VERSION:
        return
    with backend.exclusive(db):
        found = stored_version(backend, db)  # another process may have migrated while this one waited
        if found is not None and found > SCHEMA_VERSION:
            raise StoreError(f"{where}: schema version {found} is newer than this harness ({SCHEMA_VERSION})")
        if found == SCHEMA_VERSION:
            return
        backend.script(db, backend.schema(_SCHEMA))
        for version in range((found or 1) + 1, SCHEMA_VERSION + 1):  # a fresh store has version 1 now
            step = MIGRATIONS[version]
            if callable(step):
                step(backend, db)
            else:
                backend.script(db, backend.schema(step))
        if found is None:
            db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        else:
            db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
            db.execute("INSERT OR IGNORE INTO meta VALUES ('migrated_from', ?)", (str(found),))
