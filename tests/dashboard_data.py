"""The store the dashboard tests (and bench/dashboard_pages.py) run against, built the way a user
builds one: `harness import-labels` of the real PandaLM and LLMBar files in ../shared/data, then
`harness agreement`, `harness leaderboard` and `harness eval` (rule judges on the quickstart task:
no model needed), all through `harness.cli.main`. Training runs are logged through
`Store.log_metrics` with deterministic curves, and the controllability study result is stored in
the layout `dashboards/results.py::controllability` reads (no `harness study` command exists yet).
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
from pathlib import Path

from harness.store import Store

REPO = Path(__file__).resolve().parents[1]


def harness(home: Path, *argv: str) -> str:
    """Run one `harness` command in-process; returns what it printed. Raises on a non-zero exit."""
    from harness.cli import main

    old = os.environ.get("HARNESS_HOME")
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(["--home", str(home), *argv])
    finally:
        if old is None:
            os.environ.pop("HARNESS_HOME", None)
        else:
            os.environ["HARNESS_HOME"] = old
    if rc:
        raise RuntimeError(f"harness {' '.join(argv)} exited {rc}: {err.getvalue()[-2000:]}")
    return out.getvalue()


RUN_CONFIGS = {
    "dpo-beta0.1": ({"algo": "dpo", "model": {"name": "smollm2-135m-instruct"}, "loss": {"beta": 0.1},
                     "train": {"lr": 5e-6, "steps": 40}}, "dpo"),
    "dpo-beta0.3": ({"algo": "dpo", "model": {"name": "smollm2-135m-instruct"}, "loss": {"beta": 0.3},
                     "train": {"lr": 5e-6, "steps": 40}}, "dpo"),
    "oaif-shorter": ({"algo": "oaif", "model": {"name": "smollm2-135m-instruct"}, "loss": {"beta": 0.1},
                      "judge": {"name": "rule:shorter", "instruction": "prefer the shorter response"},
                      "train": {"lr": 5e-6, "steps": 40}}, "oaif"),
}


def curve(step: int, k: float) -> dict:
    """Deterministic training curves (decaying loss, rising margin) of run speed k."""
    t = step / 40
    return {"loss": 0.693 * math.exp(-1.5 * k * t) + 0.05, "reward_margin": 2.0 * k * t,
            "reward_acc": 0.5 + 0.45 * (1 - math.exp(-3 * k * t)), "kl_nats_per_seq": 0.02 * k * step,
            "response_len": 60.0 - 20 * t * (k - 0.9), "tokens_per_s": 1000.0 + step}


def add_runs(store: Store, steps: int = 40, n_runs: int | None = None) -> list[str]:
    ids, items = [], list(RUN_CONFIGS.items())
    for i in range(n_runs or len(items)):
        name, (cfg, algo) = items[i % len(items)]
        rid = store.create_run(cfg, algo, task="quickstart", name=name,
                               run_id=name if i < len(items) else f"{name}-{i}", group="demo")
        for s in range(1, steps + 1):
            store.log_metrics(rid, s, curve(s, 1.0 + 0.5 * (i % 3)))
        store.set_run_status(rid, "finished")
        ids.append(rid)
    return ids


def add_samples(store: Store, run_id: str, steps=(10, 20)) -> None:
    """Two responses per prompt per step, as an online run stores them."""
    for s in steps:
        store.add_samples(run_id, s, [
            {"prompt": f"Name a fruit (prompt {j}).", "response": r, "index": 2 * j + i, "n_tokens": len(r.split())}
            for j in range(3) for i, r in enumerate((f"Apple, step {s}.", f"A banana is a long yellow fruit, step {s}."))])


CONTROL_INSTRUCTIONS = ("prefer the shorter response", "prefer the longer response")


def add_controllability(store: Store, steps: int = 20) -> None:
    """Two OAIF arms, one per annotator instruction, stored as `harness study controllability`
    stores them (its metric names and result layout) without training: per step the mean sampled
    length and P(annotator prefers the shorter), and the final win rate against the initial policy."""
    arms, group = [], "ctl-demo"
    for sign, instr in zip((-1, 1), CONTROL_INSTRUCTIONS):
        name = f"ctrl-{'short' if sign < 0 else 'long'}"
        cfg = {"algo": "oaif", "judge": {"name": "smollm2-logprob", "instruction": instr}, "train": {"steps": steps}}
        rid = store.create_run(cfg, "oaif", task="quickstart", name=name, run_id=name, group=group)
        per_step = []
        for s in range(1, steps + 1):
            row = {"step": s, "len_mean": 50.0 + sign * 1.5 * s, "prefers_shorter": 0.5 - sign * 0.45,
                   "loss": 0.69 - 0.01 * s}
            store.log_metrics(rid, s, {"loss": row["loss"], "sample/len_mean": row["len_mean"],
                                       "judge/prefers_shorter": row["prefers_shorter"]})
            per_step.append(row)
        store.set_run_status(rid, "done")
        arms.append({"label": instr, "judge": "smollm2-logprob", "instruction": instr, "run_id": rid,
                     "per_step": per_step, "len_first": per_step[0]["len_mean"],
                     "len_last3": sum(p["len_mean"] for p in per_step[-3:]) / 3,
                     "prefers_shorter": 0.5 - sign * 0.45,
                     "winrate": {"n": 16, "win_rate": 0.5 + sign * 0.1, "ci_low": 0.4 + sign * 0.1,
                                 "ci_high": 0.6 + sign * 0.1, "mean_chars_policy": 200.0 + sign * 100}})
    store.add_result("controllability", {"group": group, "task": "quickstart", "eval_judge": "smollm2-logprob",
                                         "arms": arms}, name=group, task="quickstart", judge="smollm2-logprob",
                     baseline="initial")


def terse_outputs(path: Path) -> Path:
    """The quickstart eval references cut to four words: a baseline for `harness eval`."""
    rows = [json.loads(line) for line in (REPO / "tasks" / "quickstart" / "prompts.jsonl").read_text().splitlines()
            if line.strip()]
    path.write_text("".join(json.dumps({"id": r["id"], "response": " ".join(r["reference"].split()[:4])}) + "\n"
                            for r in rows if r.get("split") == "eval"))
    return path


def build_store(home: Path, shared_data: Path, n_boot: int = 100) -> Store:
    home = Path(home)
    harness(home, "import-labels", "--source-format", "pandalm", str(shared_data / "pandalm_testset"))
    harness(home, "import-labels", "--source-format", "llmbar", str(shared_data / "llmbar"))
    harness(home, "agreement", "--n-boot", str(n_boot))
    harness(home, "leaderboard", "--dataset", "pandalm", "--judge", "pandalm:gpt-3.5-turbo", "--n-boot", str(n_boot))
    terse = terse_outputs(home / "terse.jsonl")
    for judge in ("rule:longer", "rule:shorter"):
        harness(home, "eval", "--policy", "reference", "--baseline", str(terse), "--judge", judge,
                "--task", "quickstart")
    store = Store(home)
    runs = add_runs(store)
    add_samples(store, runs[-1])
    add_controllability(store)
    return store


def pandalm_copies(store: Store, shared_data: Path, copies: int) -> int:
    """Grow a store with `copies` extra copies of the PandaLM labels (the prompt carries the copy
    number, so each copy is new pairs and items): for benches of large stores. Returns #labels added."""
    from judges.importers import read_labels

    pairs, labels = read_labels("pandalm", shared_data / "pandalm_testset")
    added = 0
    for c in range(1, copies + 1):
        new_pairs = {p.pair_id: dataclasses.replace(p, prompt=f"{p.prompt}\n\n(copy {c})",
                                                    record_id=f"{p.record_id}#{c}") for p in pairs}
        new_labels = [dataclasses.replace(lab, pair_id=new_pairs[lab.pair_id].pair_id,
                                          meta={**lab.meta, "item": f"{lab.meta.get('item')}#{c}",
                                                "dedup": f"{lab.meta.get('dedup', '')}#{c}"})
                      for lab in labels]
        added += store.add_labels(new_labels, list(new_pairs.values()))
    return added
