"""A kill -9 matrix: import, judge, OAIF training and RLOO training, each killed with SIGKILL at three
points (early, middle, late), then re-run (import, judge) or resumed (`resume=true`), and compared
with an uninterrupted run of the same command: labels (or RLOO samples) lost, duplicated, and the
largest absolute difference of the final weights.

* import: `harness import-labels --source-format pandalm` of the real PandaLM file; one transaction, so the
  kill points are fractions of the uninterrupted run's wall time (the store holds none or all).
* judge: `harness judge --judge smollm2-logprob` (the embedded model, both orders) on imported
  PandaLM pairs, a small `--chunk`; killed after k of its labels are in the store. Compared are the
  answers (cached=0): the re-run reuses the stored ones and records each reuse as a cache-hit row.
* oaif / rloo: `harness train` on a tiny random Llama (tests/tiny_llama.py) with rule:shorter,
  a checkpoint every 2 steps; killed once step k is labelled (oaif) or logged (rloo).

Prints one JSON line per case and a markdown table at the end; exits 1 when any case fails.

    .venv/bin/python bench/kill_matrix.py [--work DIR] [--cases import judge oaif rloo] [--out FILE]
    .venv/bin/python bench/kill_matrix.py --smoke --out /tmp/kill.json   # oaif only, 2 steps, one kill
"""
from __future__ import annotations

import argparse
import collections
import json
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))
SHARED = REPO.parent / "shared" / "data"
RULE_CONFIG = REPO / "configs" / "oaif_quickstart_rule_shorter.yaml"
RLOO_CONFIG = REPO / "configs" / "rloo_quickstart_cpu.yaml"
POINTS = ("early", "middle", "late")


# -- reading a store that a killed (or running) process writes ------------------------------------
def read(home: Path, sql: str, params=()) -> list[tuple]:
    """Rows of a read-only query; [] while the store does not exist yet."""
    db = home / "harness.db"
    if not db.exists():
        return []
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()
    except sqlite3.OperationalError:  # schema not created yet
        return []


def count(home: Path, sql: str, params=()) -> int:
    rows = read(home, sql, params)
    return int(rows[0][0] or 0) if rows else 0


def compare(ref: list[tuple], got: list[tuple]) -> tuple[int, int]:
    """(lost, duplicated): rows of the reference missing from `got`, and rows of `got` beyond the reference."""
    a, b = collections.Counter(ref), collections.Counter(got)
    return sum((a - b).values()), sum((b - a).values())


def max_weight_diff(a_dir: Path | None, b_dir: Path | None) -> float | None:
    if a_dir is None or b_dir is None:
        return None
    from safetensors.torch import load_file

    a, b = load_file(str(a_dir / "model.safetensors")), load_file(str(b_dir / "model.safetensors"))
    if a.keys() != b.keys():
        return math.inf
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def latest_checkpoint(home: Path, run_id: str) -> Path | None:
    from harness.store import Store

    return Store(home).latest_checkpoint(run_id)


# -- one kind of job ----------------------------------------------------------------------------
@dataclass
class Job:
    name: str
    argv: Callable[[bool], list[str]]  # the command; True: the resume form
    progress: Callable[[Path], int]  # labels / steps visible in the store or log now
    points: Callable[[int, float], list[tuple[str, Callable[[int, float], bool]]]]  # (what, kill now?)
    rows: Callable[[Path], list[tuple]]  # what must be neither lost nor duplicated
    weights: Callable[[Path], Path | None] = lambda home: None
    base: Path | None = None  # a home to start from (copied), e.g. with pairs imported
    extra: dict = field(default_factory=dict)


def env() -> dict:
    return {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO),
            "HARNESS_MODEL_CACHE": os.environ.get("HARNESS_MODEL_CACHE", str(REPO / "runs" / "models"))}


def start(home: Path, argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness.cli", "--home", str(home), *argv], cwd=REPO, env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err[-1500:]


def fresh_home(job: Job, home: Path) -> Path:
    shutil.rmtree(home, ignore_errors=True)
    if job.base is not None:
        shutil.copytree(job.base, home)
    return home


def uninterrupted(job: Job, work: Path) -> dict:
    home = fresh_home(job, work / f"{job.name}-ref")
    t = time.perf_counter()
    rc, err = finish(start(home, job.argv(False)))
    if rc != 0:
        raise RuntimeError(f"{job.name}: the uninterrupted run exited {rc}: {err}")
    return {"home": home, "seconds": time.perf_counter() - t, "total": job.progress(home), "rows": job.rows(home)}


def killed_case(job: Job, work: Path, ref: dict, point: str, what: str, due) -> dict:
    home = fresh_home(job, work / f"{job.name}-{point}")
    t0 = time.perf_counter()
    proc = start(home, job.argv(False))
    seen = 0
    while proc.poll() is None:
        seen = job.progress(home)
        if due(seen, time.perf_counter() - t0):
            break
        time.sleep(0.01)
    before_end = proc.poll() is None
    if before_end:
        os.kill(proc.pid, signal.SIGKILL)  # the child this bench started, by pid
    rc_kill, _ = finish(proc)
    after_kill = job.progress(home)
    rc, err = finish(start(home, job.argv(True)))
    got = job.rows(home)
    lost, dup = compare(ref["rows"], got)
    diff = max_weight_diff(job.weights(ref["home"]), job.weights(home))
    ok = before_end and rc_kill == -signal.SIGKILL and rc == 0 and lost == 0 and dup == 0 and (
        diff is None or diff <= 1e-6)
    out = {"case": job.name, "point": point, "kill_when": what, "killed_before_end": before_end,
           "seen_at_kill": seen, "in_store_after_kill": after_kill, "kill_rc": rc_kill, "rerun_rc": rc,
           "rows_ref": len(ref["rows"]), "rows": len(got), "lost": lost, "duplicated": dup,
           "cache_hit_rows": count(home, "SELECT COUNT(*) FROM labels WHERE cached=1"),
           "max_abs_weight_diff": diff, "seconds": round(time.perf_counter() - t0, 1), "ok": ok}
    if rc != 0:
        out["rerun_stderr"] = err
    return out


# -- the four jobs ------------------------------------------------------------------------------
def by_time(fractions=(0.5, 0.8, 0.95)):
    def points(total: int, seconds: float):
        return [(f"t={f * seconds:.1f}s ({f:.0%} of the uninterrupted run)", lambda n, t, s=f * seconds: t >= s)
                for f in fractions]
    return points


def by_count(fractions=(0.15, 0.5, 0.85), unit="labels"):
    def points(total: int, seconds: float):
        ks = [max(1, min(total - 1, round(f * total))) for f in fractions]
        return [(f">= {k} of {total} {unit}", lambda n, t, k=k: n >= k) for k in ks]
    return points


def by_step(steps=(1, 3, 5)):
    def points(total: int, seconds: float):
        return [(f"step {k} of {total} done", lambda n, t, k=k: n >= k) for k in steps]
    return points


LABEL_ROW = ("SELECT pair_id, annotator_id, annotator_version, verdict, shown_order, run_id, step, raw_output"
             " FROM labels")


def import_job() -> Job:
    argv = ["import-labels", "--source-format", "pandalm", str(SHARED / "pandalm_testset")]
    return Job("import", lambda resume: argv, lambda h: count(h, "SELECT COUNT(*) FROM labels"), by_time(),
               lambda h: read(h, LABEL_ROW))


def judge_job(work: Path, limit: int) -> Job:
    base = work / "judge-base"
    if not (base / "harness.db").exists():
        rc, err = finish(start(base, import_job().argv(False)))
        if rc:
            raise RuntimeError(f"import for the judge case exited {rc}: {err}")
    argv = ["judge", "--judge", "smollm2-logprob", "--dataset", "pandalm", "--limit", str(limit), "--chunk", "2"]
    q = "SELECT COUNT(*) FROM labels WHERE annotator_id='smollm2-logprob'"
    # answers only: a re-run also stores one visible cache-hit row (cached=1) per answer it reused
    return Job("judge", lambda resume: argv, lambda h: count(h, q), by_count(),
               lambda h: read(h, LABEL_ROW + " WHERE annotator_id='smollm2-logprob' AND cached=0"), base=base)


def tiny_model(work: Path) -> str:
    from harness.models import resolve_model
    from tiny_llama import make_tiny_llama

    os.environ.setdefault("HARNESS_MODEL_CACHE", str(REPO / "runs" / "models"))
    return make_tiny_llama(work / "tiny-llama", resolve_model("smollm2-135m-instruct"))


def oaif_job(tiny: str, steps: int, kill_steps=(1, 3, 5), smoke: bool = False) -> Job:
    kv = {"model.name": tiny, "train.steps": steps, "train.batch_size": 4, "train.lr": 1e-3,
          "train.checkpoint_every": 2, "sampling.max_new_tokens": 24}
    if smoke:  # the annotator's validity card (labelled before training) on 4 pairs, not 32
        kv["judge.validity_pairs"] = 4
    over = [f"{k}={v}" for k, v in kv.items()]
    q = "SELECT MAX(step) FROM labels WHERE run_id='x'"
    return Job("oaif", lambda resume: ["train", str(RULE_CONFIG), *over, *(["resume=true"] if resume else []),
                                       "--run-id", "x"],
               lambda h: count(h, q), by_step(kill_steps), lambda h: read(h, LABEL_ROW + " WHERE run_id='x'"),
               weights=lambda h: latest_checkpoint(h, "x"))


def rloo_job(tiny: str, steps: int, kill_steps=(1, 3, 5)) -> Job:
    kv = {"model.name": tiny, "rl.reward_model": "rule:shorter", "train.steps": steps, "data.max_prompt_tokens": 32,
          "sampling.max_new_tokens": 12, "train.batch_size": 2, "train.lr": 1e-3, "train.checkpoint_every": 2}
    over = [f"{k}={v}" for k, v in kv.items()]
    q = "SELECT MAX(step) FROM metrics WHERE run_id='x' AND split='train'"
    rows = "SELECT step, sample_id, response, ROUND(reward, 6) FROM samples WHERE run_id='x'"
    return Job("rloo", lambda resume: ["train", str(RLOO_CONFIG), *over, *(["resume=true"] if resume else []),
                                       "--run-id", "x"],
               lambda h: count(h, q), by_step(kill_steps), lambda h: read(h, rows) + [("metric step",) + r for r in read(
                   h, "SELECT step FROM metrics WHERE run_id='x' AND split='train'")],
               weights=lambda h: latest_checkpoint(h, "x"))


def table(results: list[dict]) -> str:
    head = ("| case | point | killed when | in store after kill | rows (ref) | lost | duplicated "
            "| max abs weight diff | ok |\n|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in results:
        d = r["max_abs_weight_diff"]
        lines.append(f"| {r['case']} | {r['point']} | {r['kill_when']} | {r['in_store_after_kill']} | "
                     f"{r['rows']} ({r['rows_ref']}) | {r['lost']} | {r['duplicated']} | "
                     f"{'-' if d is None else f'{d:.1e}'} | {'yes' if r['ok'] else 'NO'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default=None, help="working directory (default: a temporary one, removed)")
    ap.add_argument("--cases", nargs="+", default=["import", "judge", "oaif", "rloo"])
    ap.add_argument("--steps", type=int, default=6, help="training steps (kills after steps 1, 3, 5)")
    ap.add_argument("--judge-limit", type=int, default=12, help="pairs the judge case labels (both orders)")
    ap.add_argument("--smoke", action="store_true", help="the oaif case only, 2 steps, killed once (after step 1)")
    ap.add_argument("--out", default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    kills = (1, 3, 5)
    if args.smoke:
        args.cases, args.steps, kills = ["oaif"], 2, (1,)
    tmp = None if args.work else tempfile.mkdtemp(prefix="kill_matrix_")
    work = Path(args.work or tmp)
    work.mkdir(parents=True, exist_ok=True)
    try:
        tiny = tiny_model(work) if {"oaif", "rloo"} & set(args.cases) else None
        makers = {"import": import_job, "judge": lambda: judge_job(work, args.judge_limit),
                  "oaif": lambda: oaif_job(tiny, args.steps, kills, args.smoke), "rloo": lambda: rloo_job(tiny, args.steps, kills)}
        results = []
        for name in args.cases:
            job = makers[name]()
            ref = uninterrupted(job, work)
            for point, (what, due) in zip(POINTS, job.points(ref["total"], ref["seconds"])):
                res = killed_case(job, work, ref, point, what, due)
                print(json.dumps(res), flush=True)
                results.append(res)
        print(table(results))
        if args.out:
            from bench_common import machine, write_json

            write_json(args.out, {"bench": "kill_matrix", "smoke": args.smoke, "steps": args.steps,
                                  "cases": results, "all_ok": all(r["ok"] for r in results), "machine": machine()})
        return 0 if all(r["ok"] for r in results) else 1
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
