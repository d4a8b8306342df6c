"""The one module that owns storage.

Layout under the harness home (`--home`, `HARNESS_HOME`, default `./runs`):

    <home>/harness.db            SQLite (WAL): runs, metrics, pairs, samples, labels, results
                                 (or a PostgreSQL server: --store URL / HARNESS_STORE, backends.py)
    <home>/<run_id>/config.yaml  the resolved config of the run
    <home>/<run_id>/env.json     package versions, git commit, host
    <home>/<run_id>/checkpoints/step-<N>/  safetensors weights + trainer state (atomic rename)
    <home>/<run_id>/log.jsonl    per-step metrics, also in the database

Every write is one transaction, so a killed process leaves no half-written row. Dashboards and
reports read through this module and never touch the files or tables themselves.

The package, by concern: schema.py (DDL, migrations; pair_identity.py is migration 4), keys.py (a
label's cache and dedup keys), backends.py (SQLite, PostgreSQL), this file
(the Store: connections, pairs, labels and the label cache), queries.py + filters.py (typed reads of
pairs and labels), runs.py (runs, metrics, samples, results, run files), checkpoints.py, raters.py.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from ..records import Annotator, Label, Pair
from .backends import BackendError, open_backend
from .checkpoints import OPTIMIZER_FILES, Checkpoints
from .filters import LabelFilter, PairFilter
from .keys import cache_key, dedup_key
from .queries import PairLabelQueries
from .runs import (RESERVED_NAMES, RUN_ID_RE, RunRecords, atomic_write_text, check_run_id,
                   environment_info)
from .schema import _SCHEMA, MIGRATIONS, SCHEMA_VERSION, StoreError, migrate

# re-exported: what callers and tests import from harness.store
_REEXPORTED = (_SCHEMA, MIGRATIONS, SCHEMA_VERSION, LabelFilter, PairFilter, OPTIMIZER_FILES, RESERVED_NAMES, RUN_ID_RE,
               atomic_write_text, check_run_id, environment_info)

DEFAULT_HOME = "runs"
BUSY_TIMEOUT_S = 60.0  # how long a writer waits for another writer's lock before giving up


def default_home() -> Path:
    return Path(os.environ.get("HARNESS_HOME", DEFAULT_HOME))


def label_cache_key(annotator: Annotator, pair_id: str, shown_order: str) -> str:
    """Same annotator (id + version), same pair, same order -> same answer can be reused."""
    return cache_key(annotator.id, annotator.version, pair_id, shown_order)


class Store(RunRecords, PairLabelQueries, Checkpoints):
    busy_timeout_s = BUSY_TIMEOUT_S  # per store; tests set a short one

    def __init__(self, home: str | Path | None = None, url: str | None = None):
        """`home` keeps the run directories; the database is `url` (else $HARNESS_STORE, else
        <home>/harness.db): SQLite or a PostgreSQL server shared by a team (backends.py)."""
        self.home = Path(home) if home is not None else default_home()
        self.home.mkdir(parents=True, exist_ok=True)
        try:
            self.backend = open_backend(url if url is not None else os.environ.get("HARNESS_STORE"), self.home)
        except BackendError as e:
            raise StoreError(str(e)) from None
        # what messages name: the SQLite file (a Path) or the server's URL without its password
        self.db_path = getattr(self.backend, "path", None) or self.backend.location
        # processes opening a fresh home at once (torchrun ranks): SQLite answers the switch to WAL with
        # "locked" at once, without its busy handler, so retry here up to the busy timeout
        deadline = time.monotonic() + self.busy_timeout_s
        while True:
            try:
                self._create_schema()
                return
            except StoreError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02 + 0.08 * random.random())

    def _create_schema(self) -> None:
        with self.connect() as db:
            migrate(self.backend, db, self.db_path)

    # -- connections -------------------------------------------------------------------------
    @contextlib.contextmanager
    def connect(self) -> Iterator:
        """A connection for one use (SQLite: opened per use; PostgreSQL: one per thread and process,
        reused), safe across threads (Streamlit) and processes (accelerate). It speaks SQLite's SQL
        with `?` parameters on either backend."""
        start, busy = time.monotonic(), self.busy_timeout_s
        try:
            with self.backend.connect(busy) as db:
                yield db
        except BackendError as e:
            raise StoreError(str(e)) from None
        except Exception as e:
            # a locked or full database is the user's to fix: say so in one line, not a traceback
            mine = self.backend.error(e, time.monotonic() - start, busy)
            if mine is None:
                raise
            raise StoreError(str(mine)) from e

    @contextlib.contextmanager
    def transaction(self) -> Iterator:
        with self.connect() as db:
            self.backend.begin(db)
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                # SQLite may have rolled back already (e.g. SQLITE_FULL): a second ROLLBACK would
                # raise "no transaction is active" and hide the real error
                if self.backend.in_transaction(db):
                    with contextlib.suppress(Exception):
                        db.execute("ROLLBACK")
                raise

    def query(self, sql: str, params: Sequence = ()) -> list[dict]:
        """Rows of raw SQL: for the store package itself and for tests' / bench's read-back checks only.
        Every other module reads through the store's methods with typed filters (filters.py)."""
        with self.connect() as db:
            return [dict(r) for r in db.execute(sql, params).fetchall()]

    def query_df(self, sql: str, params: Sequence = ()):
        """As `query`, as a DataFrame (the same rule: not for modules outside the store package)."""
        import pandas as pd

        with self.connect() as db:
            cur = db.execute(sql, list(params))
            columns = [d[0] for d in cur.description]
            # as pandas.read_sql_query builds it, on either backend
            return pd.DataFrame.from_records([tuple(r) for r in cur.fetchall()], columns=columns, coerce_float=True)

    # -- pairs and labels ----------------------------------------------------------------------
    def add_pairs(self, pairs: Iterable[Pair], db=None) -> list[str]:
        pairs = list(pairs)
        if db is None:
            with self.transaction() as db2:
                return self.add_pairs(pairs, db2)
        now = time.time()
        db.executemany(
            "INSERT OR IGNORE INTO pairs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [(p.pair_id, p.prompt, p.response_a, p.response_b, p.source, p.dataset, p.subset, p.record_id,
              p.run_id, p.step, p.policy_a, p.policy_b, p.reference, finite_json(p.meta, f"pair {p.pair_id}: meta"),
              now) for p in pairs],
        )
        return [p.pair_id for p in pairs]

    def add_labels(self, labels: Iterable[Label], pairs: Iterable[Pair] = (),
                   db=None, dedup_extra: str = "") -> int:
        """Insert labels (and their pairs) in one transaction; returns how many were new.

        A label already stored (same annotator, pair, order, run, step, and `dedup_extra` such as
        the source record of an import) is ignored, so importing or resuming twice adds nothing.
        """
        labels, pairs = list(labels), list(pairs)
        if db is None:
            with self.transaction() as db2:
                return self.add_labels(labels, pairs, db2, dedup_extra)
        if pairs:
            self.add_pairs(pairs, db)
        now = time.time()
        seen_annotators = set()
        for lab in labels:
            a = lab.annotator
            if (a.id, a.version) not in seen_annotators:
                db.execute("INSERT OR IGNORE INTO annotators VALUES (?,?,?,?,?)",
                           (a.id, a.version, a.kind, json.dumps(a.config), now))
                seen_annotators.add((a.id, a.version))
        cur = db.executemany(
            "INSERT OR IGNORE INTO labels (dedup_key, cache_key, pair_id, annotator_kind, annotator_id,"
            " annotator_version, verdict, p_a, shown_order, raw_output, latency_s, tokens_in, tokens_out, cost,"
            " run_id, step, cached, meta_json, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [(
                dedup_key(label_cache_key(l.annotator, l.pair_id, l.shown_order), l.run_id, l.step,
                          l.meta.get("dedup", dedup_extra)),
                label_cache_key(l.annotator, l.pair_id, l.shown_order), l.pair_id, l.annotator.kind,
                l.annotator.id, l.annotator.version, l.verdict, l.p_a, l.shown_order, l.raw_output,
                l.latency_s, l.tokens_in, l.tokens_out, l.cost, l.run_id, l.step, int(l.cached),
                finite_json(l.meta, f"label of {l.annotator.id} on pair {l.pair_id}: meta"), now,
            ) for l in labels if _finite_p_a(l)],
        )
        return max(cur.rowcount, 0)  # rows inserted (an ignored duplicate counts 0), summed over the batch

    def stored_pair_ids(self, pair_ids: Sequence[str], db) -> set[str]:
        """Which of `pair_ids` are stored, read in the open transaction `db` (the importers look up
        whether a record's pair is stored the other way round)."""
        ids, found = list(dict.fromkeys(pair_ids)), set()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            sql = f"SELECT pair_id FROM pairs WHERE pair_id IN ({','.join('?' * len(chunk))})"
            found |= {r[0] for r in db.execute(sql, chunk).fetchall()}
        return found

    def _query_in(self, sql: str, values: Sequence) -> list[dict]:
        """Rows of `sql`, whose `{marks}` is an IN list, over `values` in chunks (SQLite caps the
        number of bound parameters)."""
        values = list(dict.fromkeys(values))
        rows: list[dict] = []
        for i in range(0, len(values), 500):
            chunk = values[i:i + 500]
            rows += self.query(sql.format(marks=",".join("?" * len(chunk))), chunk)
        return rows

    def cached_labels(self, cache_keys: Sequence[str]) -> dict[str, dict]:
        """The first stored answer for each cache key, not counting labels that were cache hits nor
        error labels (`meta.error`: asking again retries them)."""
        out: dict[str, dict] = {}
        for r in self._query_in("SELECT * FROM labels WHERE cached=0 AND cache_key IN ({marks})"
                                f" AND {self.backend.json_text('meta_json', 'error')} IS NULL ORDER BY label_id", cache_keys):
            out.setdefault(r["cache_key"], r)
        return out

    def step_labels(self, run_id: str, step: int, annotator_id: str, version: str) -> list[dict]:
        """The labels an annotator (id + version) stored for one step of a run, error labels left out,
        oldest first (what an interrupted training step finds when it is redone)."""
        return self.query("SELECT * FROM labels WHERE run_id=? AND step=? AND annotator_id=? AND annotator_version=?"
                          f" AND {self.backend.json_text('meta_json', 'error')} IS NULL ORDER BY label_id",
                          (run_id, step, annotator_id, version))

    def label_provenance(self, label_ids: Sequence[int]) -> dict[int, dict]:
        """label_id -> {raw_output, run_id, step, created_at}: what an export carries beside the frame."""
        rows = self._query_in("SELECT label_id, raw_output, run_id, step, created_at FROM labels"
                              " WHERE label_id IN ({marks})", [int(i) for i in label_ids])
        return {r["label_id"]: r for r in rows}

    def pair_items(self, pair_ids: Sequence[str]) -> dict[str, str]:
        """The dataset item each pair stands for, where imported labels name exactly one (e.g.
        'pandalm:17'). A pair that stands for several items (two records with identical texts) keeps
        no item: it cannot pick one."""
        found: dict[str, set] = {}
        item = self.backend.json_text("meta_json", "item")
        for r in self._query_in(f"SELECT DISTINCT pair_id, {item} AS item FROM labels"
                                f" WHERE pair_id IN ({{marks}}) AND {item} IS NOT NULL", pair_ids):
            found.setdefault(r["pair_id"], set()).add(r["item"])
        return {pid: next(iter(v)) for pid, v in found.items() if len(v) == 1}

    def get_pairs(self, pair_ids: Sequence[str]) -> list[Pair]:
        ids = list(pair_ids)
        rows = {r["pair_id"]: r for r in self._query_in("SELECT * FROM pairs WHERE pair_id IN ({marks})", ids)}
        return [_row_to_pair(rows[i]) for i in ids if i in rows]

    def annotators(self) -> list[dict]:
        return self.query("SELECT a.*, (SELECT COUNT(*) FROM labels l WHERE l.annotator_id=a.annotator_id"
                          " AND l.annotator_version=a.version) AS n_labels FROM annotators a ORDER BY annotator_id")

    def data_version(self) -> tuple:
        """Changes whenever the database is written: a cache key for readers."""
        return self.backend.data_version()

    def meta(self, key: str, default: str | None = None) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key=?", (key,))
        return rows[0]["value"] if rows else default

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute(self.backend.upsert("meta", 2, ("key",), ("key", "value")), (key, str(value)))

    def counts(self) -> dict:
        with self.connect() as db:
            return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                    for t in ("runs", "pairs", "labels", "samples", "results", "metrics")}


def _row_to_pair(r: dict) -> Pair:
    return Pair(prompt=r["prompt"], response_a=r["response_a"], response_b=r["response_b"], source=r["source"] or "",
                dataset=r["dataset"], subset=r["subset"], record_id=r["record_id"], run_id=r["run_id"], step=r["step"],
                policy_a=r["policy_a"], policy_b=r["policy_b"], reference=r["reference"],
                meta=json.loads(r["meta_json"] or "{}"))


def non_finite_at(v, path: str) -> str | None:
    """Where a JSON-like value holds a NaN/Inf, e.g. 'meta.scores.1=-inf'; None if nowhere."""
    if isinstance(v, float) and not math.isfinite(v):
        return f"{path}={v!r}"
    items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, (list, tuple)) else ()
    for k, x in items:
        found = non_finite_at(x, f"{path}.{k}")
        if found:
            return found
    return None


def finite_json(obj, what: str) -> str:
    """JSON for a meta_json column, refusing NaN/Inf: json.dumps writes them as bare NaN, which SQLite's
    json functions reject, so one such row broke every later query on its pairs."""
    try:
        return json.dumps(obj, allow_nan=False)
    except ValueError:
        raise StoreError(f"{what}: non-finite number {non_finite_at(obj, 'meta')} cannot be stored "
                         "(NaN/Inf is not a value; nothing of this write was stored)") from None


def _finite_p_a(label: Label) -> bool:
    if label.p_a is not None and not math.isfinite(label.p_a):
        raise StoreError(f"label of {label.annotator.id} on pair {label.pair_id}: p_a={label.p_a!r} is not finite "
                         "(nothing of this write was stored)")
    return True


def label_to_dict(label: Label) -> dict:
    d = asdict(label)
    d["annotator"] = asdict(label.annotator)
    return d
