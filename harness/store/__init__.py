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
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import random
import re
import secrets
import shutil
import subprocess
import time
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from ..records import Annotator, Label, Pair, content_hash
from .backends import BackendError, open_backend
from .filters import LabelFilter, PairFilter
from .queries import PairLabelQueries
from .schema import _SCHEMA, MIGRATIONS, SCHEMA_VERSION, StoreError, migrate

# re-exported: what callers and tests import from harness.store
_REEXPORTED = (_SCHEMA, MIGRATIONS, SCHEMA_VERSION, LabelFilter, PairFilter)

# a checkpoint's optimizer state: accelerate's (optimizer.bin, optimizer_1.bin, ...) and, in checkpoints
# written before the accelerate loop, the harness's own
OPTIMIZER_FILES = ("optimizer*.bin", "optimizer.safetensors")
DEFAULT_HOME = "runs"


# column order of the tables that upsert (the VALUES of add_samples / log_metrics)
_METRICS_COLUMNS = ("run_id", "step", "split", "data_json", "created_at")
_SAMPLES_COLUMNS = ("sample_id", "run_id", "step", "prompt", "response", "policy", "n_tokens", "truncated", "reward",
                    "meta_json", "created_at")


BUSY_TIMEOUT_S = 60.0  # how long a writer waits for another writer's lock before giving up
RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# names the store keeps at the top level of the home: a run directory must never be one of them
RESERVED_NAMES = ("harness.db", "harness.db-wal", "harness.db-shm", "harness.db-journal", "models")


def check_run_id(run_id: str) -> str:
    """A run id is a directory name under the home: a safe character set and length, never a path
    (`..`, `/x`) nor a name the store keeps there. Returns it; StoreError otherwise."""
    if not isinstance(run_id, str) or not RUN_ID_RE.fullmatch(run_id):
        raise StoreError(f"run id {run_id!r}: use 1-100 characters A-Z a-z 0-9 . _ - starting with a letter or digit")
    if run_id.lower() in RESERVED_NAMES:
        raise StoreError(f"run id {run_id!r}: reserved (the home keeps {', '.join(RESERVED_NAMES)})")
    return run_id


def default_home() -> Path:
    return Path(os.environ.get("HARNESS_HOME", DEFAULT_HOME))


def label_cache_key(annotator: Annotator, pair_id: str, shown_order: str) -> str:
    """Same annotator (id + version), same pair, same order -> same answer can be reused."""
    return content_hash(annotator.id, annotator.version, pair_id, shown_order)


class Store(PairLabelQueries):
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

    # -- runs --------------------------------------------------------------------------------
    def new_run_id(self, algo: str, name: str | None = None) -> str:
        suffix = f"-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        # a config name may hold any text: keep the run id inside check_run_id's character set
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name or algo).lstrip("._-")[:100 - len(suffix)] or algo
        return check_run_id(stem + suffix)

    def create_run(self, config: dict, algo: str, task: str | None = None, name: str | None = None,
                   run_id: str | None = None, group: str | None = None) -> str:
        import yaml

        run_id = check_run_id(run_id) if run_id is not None else self.new_run_id(algo, name)
        run_dir = self.run_dir(run_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))
        atomic_write_text(run_dir / "env.json", json.dumps(environment_info(), indent=2))
        now = time.time()
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO runs (run_id, name, algo, task, status, created_at, updated_at, config_json, group_name)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                (run_id, name, algo, task, "created", now, now, json.dumps(config), group),
            )
        return run_id

    def run_dir(self, run_id: str) -> Path:
        return self.home / run_id

    def write_run_file(self, run_id: str, name: str, text: str) -> Path:
        """A file a pipeline keeps with its run (e.g. the demo's sampled pairs), written atomically: a
        reader (a resuming study) never sees half of it."""
        if "/" in name or name.startswith(".") or name in ("log.jsonl", "env.json", "config.yaml"):
            raise StoreError(f"run file name {name!r}: a plain file name, not one the store keeps itself")
        path = self.run_dir(run_id) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
        return path

    def add_environment(self, run_id: str, **facts) -> None:
        """Merge `facts` into the run's env.json (e.g. the dtypes this machine resolved on start/resume)."""
        path = self.run_dir(run_id) / "env.json"
        env = json.loads(path.read_text()) if path.exists() else {}
        atomic_write_text(path, json.dumps({**env, **facts}, indent=2))

    def has_run(self, run_id: str) -> bool:
        return bool(self.query("SELECT 1 FROM runs WHERE run_id=?", (run_id,)))

    def get_run(self, run_id: str) -> dict:
        rows = self.query("SELECT * FROM runs WHERE run_id=?", (run_id,))
        if not rows:
            raise StoreError(f"no run {run_id!r} in {self.db_path}")
        return _decode_run(rows[0])

    def list_runs(self, group: str | None = None) -> list[dict]:
        if group:
            rows = self.query("SELECT * FROM runs WHERE group_name=? ORDER BY created_at", (group,))
        else:
            rows = self.query("SELECT * FROM runs ORDER BY created_at")
        return [_decode_run(r) for r in rows]

    def set_run_status(self, run_id: str, status: str, note: str | None = None) -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET status=?, updated_at=?, note=COALESCE(?, note) WHERE run_id=?",
                       (status, time.time(), note, run_id))

    # -- metrics -----------------------------------------------------------------------------
    def log_metrics(self, run_id: str, step: int, metrics: dict, split: str = "train") -> None:
        now = time.time()
        data = json.dumps({k: _plain(v) for k, v in metrics.items()})
        with self.transaction() as db:
            db.execute(self.backend.upsert("metrics", 5, ("run_id", "step", "split"), _METRICS_COLUMNS),
                       (run_id, step, split, data, now))
            if split == "train":
                db.execute("UPDATE runs SET last_step=?, last_metrics_json=?, updated_at=? WHERE run_id=?",
                           (step, data, now, run_id))
        with open(self.run_dir(run_id) / "log.jsonl", "a") as f:
            f.write(json.dumps({"step": step, "split": split, **json.loads(data)}) + "\n")

    def metrics(self, run_ids: Sequence[str] | None = None, split: str | None = "train"):
        """Long table: run_id, step, split, one column per metric."""
        import pandas as pd

        sql, params = "SELECT * FROM metrics WHERE 1=1", []
        if run_ids:
            sql += f" AND run_id IN ({','.join('?' * len(run_ids))})"
            params += list(run_ids)
        if split:
            sql += " AND split=?"
            params.append(split)
        rows = self.query(sql + " ORDER BY run_id, step", params)
        return pd.DataFrame([{"run_id": r["run_id"], "step": r["step"], "split": r["split"],
                              **json.loads(r["data_json"])} for r in rows])

    def truncate_run_after(self, run_id: str, step: int) -> None:
        """On resume: metrics and samples of steps after the checkpoint are redone; labels are kept
        (the redone step finds them in the label cache, so none is lost or counted twice)."""
        with self.transaction() as db:
            db.execute("DELETE FROM metrics WHERE run_id=? AND step>? AND split='train'", (run_id, step))
            db.execute("DELETE FROM samples WHERE run_id=? AND step>?", (run_id, step))

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
                content_hash(label_cache_key(l.annotator, l.pair_id, l.shown_order), l.run_id, l.step,
                             l.meta.get("dedup", dedup_extra)),
                label_cache_key(l.annotator, l.pair_id, l.shown_order), l.pair_id, l.annotator.kind,
                l.annotator.id, l.annotator.version, l.verdict, l.p_a, l.shown_order, l.raw_output,
                l.latency_s, l.tokens_in, l.tokens_out, l.cost, l.run_id, l.step, int(l.cached),
                finite_json(l.meta, f"label of {l.annotator.id} on pair {l.pair_id}: meta"), now,
            ) for l in labels if _finite_p_a(l)],
        )
        return max(cur.rowcount, 0)  # rows inserted (an ignored duplicate counts 0), summed over the batch

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

    # -- samples -----------------------------------------------------------------------------
    def add_samples(self, run_id: str, step: int, rows: Sequence[dict]) -> None:
        """rows: {prompt, response, policy?, n_tokens?, truncated?, reward?, index?, meta?}."""
        now = time.time()
        with self.transaction() as db:
            db.executemany(
                self.backend.upsert("samples", 11, ("sample_id",), _SAMPLES_COLUMNS),
                [(f"{run_id}/{step}/{r.get('index', i)}", run_id, step, r["prompt"], r["response"], r.get("policy"),
                  r.get("n_tokens"), None if r.get("truncated") is None else int(r["truncated"]), r.get("reward"),
                  json.dumps(r.get("meta", {})), now) for i, r in enumerate(rows)],
            )

    def samples_df(self, run_id: str | None = None):
        if run_id:
            return self.query_df("SELECT * FROM samples WHERE run_id=? ORDER BY step, sample_id", (run_id,))
        return self.query_df("SELECT * FROM samples ORDER BY run_id, step, sample_id")

    # -- results -----------------------------------------------------------------------------
    def add_result(self, kind: str, result: dict, name: str | None = None, run_id: str | None = None,
                   task: str | None = None, judge: str | None = None, baseline: str | None = None) -> int:
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO results (kind, name, run_id, task, judge, baseline, result_json, created_at)"
                " VALUES (?,?,?,?,?,?,?,?) RETURNING result_id",
                (kind, name, run_id, task, judge, baseline, json.dumps(result, default=_plain), time.time()),
            )
            return cur.fetchone()[0]

    def results(self, kind: str | None = None) -> list[dict]:
        rows = (self.query("SELECT * FROM results WHERE kind=? ORDER BY result_id", (kind,)) if kind
                else self.query("SELECT * FROM results ORDER BY result_id"))
        for r in rows:
            r["result"] = json.loads(r.pop("result_json"))
        return rows

    # -- checkpoints -------------------------------------------------------------------------
    def checkpoints_dir(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "checkpoints"

    def latest_checkpoint(self, run_id: str) -> Path | None:
        root = self.checkpoints_dir(run_id)
        if not root.exists():
            return None
        done = [p for p in root.glob("step-*") if (p / "COMPLETE").exists()]
        return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)

    def drop_optimizer_state(self, run_id: str) -> int:
        """Delete the optimizer state of a DONE run's checkpoints (the weights stay, so it can still be
        evaluated or used as init_from, not resumed). Returns the bytes freed."""
        if self.get_run(run_id)["status"] != "done":
            raise StoreError(f"run {run_id}: not done; its optimizer state is what a resume needs")
        return self._drop_optimizer_files(run_id)

    def _drop_optimizer_files(self, run_id: str) -> int:
        freed = 0
        for pattern in OPTIMIZER_FILES:
            for f in self.checkpoints_dir(run_id).glob(f"step-*/{pattern}"):
                freed += f.stat().st_size
                f.unlink()
        return freed

    @contextlib.contextmanager
    def writing_checkpoint(self, run_id: str, step: int, keep: int = 2) -> Iterator[Path]:
        """Yield a temp dir to fill; on success it is renamed into place and marked COMPLETE."""
        tmp = self.checkpoint_staging_dir(run_id, step, f"-{os.getpid()}")
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # a failed write (disk full) leaves no half checkpoint
            raise
        self.commit_checkpoint(run_id, step, tmp, keep)

    def checkpoint_staging_dir(self, run_id: str, step: int, suffix: str = "") -> Path:
        """A fresh, empty dir for checkpoint `step` (the trainer's processes all write into the same one,
        so no pid in its name there); nothing reads it until commit_checkpoint."""
        root = self.checkpoints_dir(run_id)
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / f".tmp-step-{step}{suffix}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        return tmp

    def commit_checkpoint(self, run_id: str, step: int, staging: Path, keep: int = 2) -> Path:
        """Mark `staging` COMPLETE, rename it into place (atomic), keep the newest `keep` checkpoints."""
        root = self.checkpoints_dir(run_id)
        (staging / "COMPLETE").write_text(str(step))
        final = root / f"step-{step}"
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        done = sorted((p for p in root.glob("step-*") if (p / "COMPLETE").exists()),
                      key=lambda p: int(p.name.split("-")[1]))
        for old in done[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def drop_resume_state(self, run_id: str) -> int:
        """A finished run is never resumed: delete its checkpoints' optimizer states (AdamW's are twice
        the weights). Weights, scheduler and RNG stay. Returns the bytes freed."""
        return self._drop_optimizer_files(run_id)


def _decode_run(r: dict) -> dict:
    r = dict(r)
    r["config"] = json.loads(r.pop("config_json"))
    r["last_metrics"] = json.loads(r.pop("last_metrics_json") or "{}")
    return r


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


def _plain(v):
    if hasattr(v, "item"):
        return v.item()
    if isinstance(v, Path):
        return str(v)
    return v


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def environment_info() -> dict:
    from importlib import metadata

    versions = {}
    for pkg in ("torch", "transformers", "datasets", "accelerate", "peft", "trl", "streamlit", "pandas", "vllm"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"versions": versions, "git_commit": commit, "python": platform.python_version(),
            "host": platform.node(), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}


def label_to_dict(label: Label) -> dict:
    d = asdict(label)
    d["annotator"] = asdict(label.annotator)
    return d
