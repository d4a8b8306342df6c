"""Runs, their metrics, samples and results: the rows and run files of training and evaluation.

A mixin of `Store` (it uses `home`, `backend`, `transaction`, `query` and `query_df`).
"""
from __future__ import annotations

import json
import os
import platform
import re
import secrets
import subprocess
import time
from pathlib import Path
from typing import Sequence

from .schema import StoreError

# column order of the tables that upsert (the VALUES of add_samples / log_metrics)
_METRICS_COLUMNS = ("run_id", "step", "split", "data_json", "created_at")
_SAMPLES_COLUMNS = ("sample_id", "run_id", "step", "prompt", "response", "policy", "n_tokens", "truncated", "reward",
                    "meta_json", "created_at")
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


class RunRecords:
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


def _decode_run(r: dict) -> dict:
    r = dict(r)
    r["config"] = json.loads(r.pop("config_json"))
    r["last_metrics"] = json.loads(r.pop("last_metrics_json") or "{}")
    return r


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
