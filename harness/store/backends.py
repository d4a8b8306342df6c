"""The two databases the store runs on, chosen by a URL (`--store URL` / `HARNESS_STORE`):

  (none), sqlite, sqlite:///path/harness.db   one SQLite file (WAL), default <home>/harness.db
  postgresql://user:pass@host:5432/db          a shared PostgreSQL server, for rater teams

The store writes its SQL once, in SQLite's dialect with `?` parameters; a backend connects, turns
that SQL into its own (PostgreSQL: `%s` parameters, ILIKE for SQLite's case-insensitive LIKE,
`INSERT ... ON CONFLICT` for `INSERT OR IGNORE/REPLACE`, DOUBLE PRECISION for REAL, an identity column
for AUTOINCREMENT) and reports its errors in the store's words. psycopg (3), not SQLAlchemy: the
store's queries are plain SQL already and need no ORM; what differs is this file.
"""
from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit, urlunsplit


class BackendError(RuntimeError):
    """Raised as the store's own StoreError (harness/store/__init__.py wraps it)."""


def redact(url: str) -> str:
    """The URL without its password (what messages and env.json show)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


# -- SQLite ---------------------------------------------------------------------------------------
def _sqlite_code(e: sqlite3.Error) -> int:
    return (getattr(e, "sqlite_errorcode", 0) or 0) & 0xFF  # primary result code


class SqliteBackend:
    name = "sqlite"

    def __init__(self, path: Path):
        self.path = Path(path)
        self.location = str(self.path)

    def schema(self, ddl: str) -> str:
        return ddl

    def sql(self, sql: str) -> str:
        return sql

    def json_text(self, column: str, key: str) -> str:
        return f"json_extract({column}, '$.{key}')"

    def upsert(self, table: str, n_values: int, key: tuple[str, ...], columns: tuple[str, ...]) -> str:
        return f"INSERT OR REPLACE INTO {table} VALUES ({','.join('?' * n_values)})"

    def error(self, e: Exception, waited_s: float, busy_s: float) -> BackendError | None:
        """The store's own message for a locked or full database (None for any other error)."""
        if not isinstance(e, sqlite3.Error):
            return None
        code, text = _sqlite_code(e), str(e).lower()
        if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "database is locked" in text:
            return BackendError(f"{self.path}: database is locked by another writer; gave up after waiting "
                                f"{waited_s:.1f} s (busy timeout {busy_s:g} s). Let the other harness "
                                f"process finish (a training run, an import, the Label page) and run this again")
        if code == sqlite3.SQLITE_FULL or "database or disk is full" in text:
            return BackendError(f"{self.path}: database or disk is full; this write was rolled back (nothing of it "
                                f"is stored). Free space and run this again")
        return None

    @contextlib.contextmanager
    def connect(self, busy: float) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=busy, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute(f"PRAGMA busy_timeout={int(busy * 1000)}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        finally:
            db.close()

    row_lock = ""  # BEGIN IMMEDIATE already holds the one write lock: no row locks needed

    def begin(self, db) -> None:
        db.execute("BEGIN IMMEDIATE")  # take the write lock now: no deadlock upgrading a read later

    def in_transaction(self, db) -> bool:
        return db.in_transaction

    @contextlib.contextmanager
    def exclusive(self, db) -> Iterator[None]:
        """One transaction holding the write lock: one process creates or migrates the schema at a time."""
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def script(self, db, ddl: str) -> None:
        """Run DDL statements in the open transaction (executescript would commit it first)."""
        for stmt in (s.strip() for s in ddl.split(";")):
            if stmt:
                db.execute(stmt)

    def has_table(self, db, name: str) -> bool:
        return db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None

    def data_version(self) -> tuple:
        """Changes whenever the database is written (db and WAL file stats)."""
        out = []
        for p in (self.path, self.path.with_name(self.path.name + "-wal")):
            try:
                st = p.stat()
                out += [st.st_mtime_ns, st.st_size]
            except FileNotFoundError:
                out += [0, 0]
        return tuple(out)


# -- PostgreSQL -----------------------------------------------------------------------------------
_QUOTED = re.compile(r"('(?:[^']|'')*')")


def pg_sql(sql: str) -> str:
    """SQLite-dialect SQL of the store -> PostgreSQL: `?` -> `%s` and `%` -> `%%` (psycopg's
    placeholders), LIKE -> ILIKE, outside quoted literals only."""
    parts = _QUOTED.split(sql)
    for i in range(0, len(parts), 2):  # even parts are outside quotes
        p = parts[i].replace("%", "%%").replace("?", "%s")
        parts[i] = re.sub(r"\bLIKE\b", "ILIKE", p)
    for i in range(1, len(parts), 2):
        parts[i] = parts[i].replace("%", "%%")
    sql = "".join(parts)
    m = re.match(r"\s*INSERT OR IGNORE INTO\b", sql, re.I)
    if m:
        sql = "INSERT INTO" + sql[m.end():] + " ON CONFLICT DO NOTHING"
    return sql


def pg_schema(ddl: str) -> str:
    ddl = ddl.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
    ddl = re.sub(r"\bREAL\b", "DOUBLE PRECISION", ddl)  # PostgreSQL's REAL is 4 bytes: p_a, times would round
    return re.sub(r"\bINTEGER\b", "BIGINT", ddl)


class _Row:
    """A result row as sqlite3.Row gives it: by index, by column name, and dict(row)."""
    __slots__ = ("_names", "_values")

    def __init__(self, names: list[str], values: tuple):
        self._names, self._values = names, values

    def __getitem__(self, key):
        return self._values[key] if isinstance(key, int) else self._values[self._names.index(key)]

    def keys(self) -> list[str]:
        return list(self._names)

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def _row_factory(cursor):
    names = [c.name for c in cursor.description or ()]
    return lambda values: _Row(names, values)


class _PgConnection:
    """psycopg connection speaking the store's SQL (what `Store.connect` yields on PostgreSQL)."""

    def __init__(self, conn):
        self.conn = conn

    def execute(self, sql: str, params=()):
        # always a (possibly empty) tuple: psycopg then reads %% as %, which pg_sql wrote for every %
        return self.conn.execute(pg_sql(sql), tuple(params))

    def executemany(self, sql: str, rows):
        cur = self.conn.cursor()
        cur.executemany(pg_sql(sql), [tuple(r) for r in rows])
        return cur


class PostgresBackend:
    name = "postgresql"
    LOCK_ID = 724_119  # pg_advisory_xact_lock key: one process creates or migrates the schema at a time

    def __init__(self, url: str):
        try:
            import psycopg  # noqa: F401  (the `postgres` extra)
        except ImportError:
            raise BackendError(f"store {redact(url)}: PostgreSQL needs psycopg; "
                               "pip install 'feedback-harness[postgres]'") from None
        self.url = url
        self.location = redact(url)
        # one open connection per thread, reused: a new one costs a TCP + SCRAM handshake per query
        self._local = threading.local()

    def schema(self, ddl: str) -> str:
        return pg_schema(ddl)

    def sql(self, sql: str) -> str:
        return pg_sql(sql)

    def json_text(self, column: str, key: str) -> str:
        return f"(({column})::jsonb ->> '{key}')"

    def upsert(self, table: str, n_values: int, key: tuple[str, ...], columns: tuple[str, ...]) -> str:
        rest = ", ".join(f"{c}=EXCLUDED.{c}" for c in columns if c not in key)
        return (f"INSERT INTO {table} VALUES ({','.join('?' * n_values)}) "
                f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {rest}")

    def error(self, e: Exception, waited_s: float, busy_s: float) -> BackendError | None:
        import psycopg

        if isinstance(e, psycopg.errors.DiskFull):
            return BackendError(f"{self.location}: the server's disk is full; this write was rolled back "
                                f"(nothing of it is stored)")
        if isinstance(e, psycopg.errors.LockNotAvailable) or isinstance(e, psycopg.errors.QueryCanceled):
            return BackendError(f"{self.location}: gave up waiting for another writer's lock after "
                                f"{waited_s:.1f} s (lock timeout {busy_s:g} s); run this again")
        if isinstance(e, psycopg.OperationalError):
            return BackendError(f"{self.location}: {str(e).strip().splitlines()[0]}")
        return None

    @contextlib.contextmanager
    def connect(self, busy: float) -> Iterator[_PgConnection]:
        import psycopg
        from psycopg.pq import TransactionStatus

        conn, pid = getattr(self._local, "conn", None), os.getpid()
        if conn is not None and (conn.closed or getattr(self._local, "pid", None) != pid
                                 or conn.info.transaction_status != TransactionStatus.IDLE):
            if getattr(self._local, "pid", None) == pid:  # never close a parent process's socket
                conn.close()
            conn = None
        if conn is None:
            try:
                conn = psycopg.connect(self.url, autocommit=True, row_factory=_row_factory, connect_timeout=10)
            except psycopg.OperationalError as e:
                raise BackendError(f"store {self.location}: cannot connect ({str(e).strip().splitlines()[0]})") from None
            self._local.conn, self._local.pid, self._local.busy = conn, pid, None
        if self._local.busy != busy:
            conn.execute(f"SET lock_timeout = {int(busy * 1000)}")
            self._local.busy = busy
        try:
            yield _PgConnection(conn)
        except psycopg.OperationalError:
            conn.close()  # a broken connection is not reused
            raise

    row_lock = " FOR UPDATE"  # READ COMMITTED: a check-then-insert locks the row it checks

    def begin(self, db: _PgConnection) -> None:
        db.conn.execute("BEGIN")

    def in_transaction(self, db: _PgConnection) -> bool:
        from psycopg.pq import TransactionStatus

        return db.conn.info.transaction_status != TransactionStatus.IDLE

    @contextlib.contextmanager
    def exclusive(self, db: _PgConnection) -> Iterator[None]:
        """One transaction holding the schema's advisory lock until it commits."""
        with db.conn.transaction():
            db.conn.execute("SELECT pg_advisory_xact_lock(%s)", (self.LOCK_ID,))
            yield

    def script(self, db: _PgConnection, ddl: str) -> None:
        for stmt in (s.strip() for s in ddl.split(";")):
            if stmt:
                db.conn.execute(stmt)

    def has_table(self, db: _PgConnection, name: str) -> bool:
        # a catalog query, not to_regclass: its cached lookup can miss a table another process just made
        return db.conn.execute("SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema()"
                               " AND tablename = %s", (name,)).fetchone() is not None

    def data_version(self) -> tuple:
        """The server's WAL position: moves on every write (of any database of the server; a reader's
        cache then only refreshes more often than needed)."""
        with self.connect(10.0) as db:
            return (db.conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0],)


def open_backend(url: str | None, home: Path):
    """The backend a store URL names; None or 'sqlite' -> <home>/harness.db."""
    if not url or url == "sqlite":
        return SqliteBackend(home / "harness.db")
    if url.startswith("sqlite:///"):
        return SqliteBackend(Path(url[len("sqlite:///"):]))
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresBackend(url)
    raise BackendError(f"store URL {redact(url)!r}: use sqlite:///path/harness.db or postgresql://user@host/db")


__all__ = ["BackendError", "PostgresBackend", "SqliteBackend", "open_backend", "pg_schema", "pg_sql", "redact"]
