"""Load on a shared store: N raters label at once for S seconds while a training run and an import
write to the same store, on loopback PostgreSQL (or SQLite). Counts what each rater was told was
saved against what the store holds: lost (acknowledged, not stored) and duplicated (stored twice)
must both be 0. Reports p50/p95/p99 of a label write (one transaction, as a Label-page click).

    .venv/bin/python bench/store_load.py --url postgresql://harness:harness@127.0.0.1:5432/postgres \
        [--raters 20] [--seconds 60] [--out bench/results/store_load.json]

The URL names a server; a fresh database is made on it for the run and dropped after it. The pool
the raters label is LLMBar + HH-RLHF harmless test (imported first); the concurrent import is PandaLM; the training run is
`harness train configs/oaif_quickstart_rule_shorter.yaml` on a tiny model (rule annotator: the
load is on the store, so the run writes steps rather than computes), a separate process stopped at
the deadline. tests/test_store_load.py runs a short version; `--smoke` a shorter one on SQLite (no
--url): 2 raters for 3 s, LLMBar only, a 2-step training run let finish.

    .venv/bin/python bench/store_load.py --smoke --out /tmp/load.json
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
SHARED = REPO.parent / "shared" / "data"


def fresh_database(admin_url: str) -> tuple[str, callable]:
    import psycopg

    name = f"harness_load_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")

    def drop():
        with psycopg.connect(admin_url, autocommit=True) as db:
            db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return urlsplit(admin_url)._replace(path=f"/{name}").geturl(), drop


def percentile(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def rater_loop(url: str | None, home: Path, rater_id: str, pool: list[str], deadline: float, out: dict) -> None:
    """Label from this rater's queue until the deadline, one transaction per label, as the page does."""
    from dashboards.queries import Shown, make_label  # the Label page's own label
    from harness.store import raters as R
    from harness.store import Store

    store = Store(home, url=url)
    acked, latencies, errors, full = [], [], [], 0
    pairs = {p.pair_id: p for p in store.get_pairs(pool)}
    mine: set[str] = set()
    queue: list[str] = []
    while time.monotonic() < deadline:
        if not queue:  # as the Label page: a queue of RATER_BATCH pairs, refilled when used up
            queue = R.rater_queue(store, rater_id, [p for p in pool if p not in mine], limit=10)
            if not queue:
                break
        shown = Shown(pairs[queue.pop(0)], "AB" if len(mine) % 2 else "BA")
        label = make_label(shown, rater_id, "A")
        t = time.perf_counter()
        try:
            said = R.add_rater_label(store, rater_id, label, shown.pair)  # what the Label page calls
        except Exception as e:  # reported, counted: a failed write is not acknowledged
            errors.append(f"{type(e).__name__}: {e}")
            continue
        latencies.append(time.perf_counter() - t)
        mine.add(shown.pair.pair_id)
        if said == "saved":
            acked.append((label.pair_id, label.shown_order))
        full += said == "full"
    out[rater_id] = {"acked": acked, "latencies": latencies, "errors": errors, "full": full}


def run_load(url: str | None, home: Path, raters: int = 20, seconds: float = 60.0,
             train: list[str] | None = None, import_path: Path | None = None, pool_path: Path | None = None,
             wait_for_training: bool = False) -> dict:
    """The load run; returns its figures (see the module docstring). `url` None: SQLite in `home`.
    The training run is stopped at the deadline, or with `wait_for_training` let finish its steps."""
    from harness.store import raters as R
    from harness.store import Store
    from judges.importers import import_labels

    store = Store(home, url=url)
    pool_sets = pool_path if isinstance(pool_path, list) else [("llmbar", pool_path or SHARED / "llmbar")]
    for fmt, path in pool_sets:
        import_labels(store, fmt, path)
    pool = [r["pair_id"] for r in store.query("SELECT pair_id FROM pairs ORDER BY pair_id")]
    R.set_overlap(store, 0.2, 3)
    ids = [f"rater{i:02d}" for i in range(raters)]
    for rid in ids:
        R.add_rater(store, rid, f"password-{rid}")
    env = {**os.environ, "HARNESS_STORE": url or f"sqlite:///{home / 'harness.db'}", "HARNESS_HOME": str(home)}
    trainer = subprocess.Popen([sys.executable, "-m", "harness.cli", "--home", str(home), "train", *train],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) if train else None
    deadline = time.monotonic() + seconds
    results: dict = {}
    imported: dict = {}

    def do_import():
        imported.update(import_labels(Store(home, url=url), "pandalm", import_path))

    threads = [threading.Thread(target=rater_loop, args=(url, home, rid, pool, deadline, results)) for rid in ids]
    if import_path:
        threads.append(threading.Thread(target=do_import))
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 300)
    wall = time.perf_counter() - t0
    train_steps, train_rc, train_err = None, None, ""
    if trainer:
        if not wait_for_training:
            trainer.send_signal(signal.SIGTERM)
        _, train_err = trainer.communicate(timeout=600)
        train_rc = trainer.returncode
    check = Store(home, url=url)
    if trainer:
        runs = [r for r in check.list_runs() if r["algo"] == "oaif"]
        train_steps = max((r["last_step"] for r in runs), default=0)
    acked = {(rid, pid, order) for rid, r in results.items() for pid, order in r["acked"]}
    stored = check.query("SELECT annotator_id, pair_id, shown_order, COUNT(*) AS n FROM labels"
                         " WHERE annotator_id LIKE 'human:rater%' GROUP BY annotator_id, pair_id, shown_order")
    stored_keys = {(r["annotator_id"][len("human:"):], r["pair_id"], r["shown_order"]) for r in stored}
    latencies = [x for r in results.values() for x in r["latencies"]]
    per_pair = R.human_raters_per_pair(check, pool)
    fraction, k = R.overlap(check)
    return {
        "backend": check.backend.name, "raters": raters, "seconds": seconds, "wall_s": round(wall, 1),
        "labels_acknowledged": len(acked), "labels_stored": sum(int(r["n"]) for r in stored),
        "lost": len(acked - stored_keys), "duplicated": sum(int(r["n"]) - 1 for r in stored if int(r["n"]) > 1),
        "write_errors": sum(len(r["errors"]) for r in results.values()),
        "refused_full": sum(r["full"] for r in results.values()),  # another rater took the pair's last place first
        "overlap_pairs_over_raters": sum(n > (k if R.in_overlap(p, fraction) else 1) for p, n in per_pair.items()),
        "write_latency_ms": {q: round(1000 * percentile(latencies, v), 1) if latencies else None
                             for q, v in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))},
        "labels_per_s": round(len(latencies) / wall, 1),
        "import": {k: imported.get(k) for k in ("records", "labels", "new_labels")} if import_path else None,
        "training_steps": train_steps, "training_rc": train_rc,
        "training_stderr_tail": train_err[-1500:] if train_rc not in (0, -signal.SIGTERM, None) else "",
        "training_labels": check.query("SELECT COUNT(*) AS n FROM labels WHERE run_id IS NOT NULL")[0]["n"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default=os.environ.get("HARNESS_TEST_PG"), help="PostgreSQL server (a fresh database is made)")
    ap.add_argument("--raters", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--smoke", action="store_true", help="2 raters, 3 s, a 2-step training run: seconds")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "store_load.json"))
    args = ap.parse_args()
    if args.smoke:
        args.raters, args.seconds = 2, 3.0
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="store-load-"))
    url, drop = fresh_database(args.url) if args.url else (None, lambda: None)
    try:
        # a tiny model (tests/tiny_llama.py): the load is on the store, so the run must write steps, not compute
        sys.path.insert(0, str(REPO / "tests"))
        from harness.models import resolve_model
        from tiny_llama import make_tiny_llama

        tiny = make_tiny_llama(home / "tiny", resolve_model("smollm2-135m-instruct"))
        steps = 2 if args.smoke else 100000  # smoke: a run that finishes (waited for); else stopped at the deadline
        train = [str(REPO / "configs" / "oaif_quickstart_rule_shorter.yaml"), f"model.name={tiny}", f"train.steps={steps}",
                 "train.batch_size=4", "train.checkpoint_every=0", "sampling.max_new_tokens=8", "judge.validity_pairs=4"]
        # enough pairs that 20 raters do not run out within 60 s: LLMBar and HH-RLHF's harmless test split
        pool = [("llmbar", SHARED / "llmbar"), ("hh-rlhf", SHARED / "hh_rlhf_harmless_base_test" / "test.jsonl.gz")]
        out = run_load(url, home, args.raters, args.seconds, train, SHARED / "pandalm_testset", pool[:1] if args.smoke
                       else pool, wait_for_training=args.smoke)
    finally:
        drop()
    from bench_common import machine, write_json

    m = machine()
    out.update(smoke=args.smoke, cpu=m["cpu_model"], cores=m["cores"], time=m["time"], machine=m)
    write_json(args.out, out)
    print(json.dumps(out, indent=2))
    return 0 if out["lost"] == 0 and out["duplicated"] == 0 and out["write_errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
