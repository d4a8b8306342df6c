"""Experiment trackers (`train.report_to: [tensorboard, mlflow, wandb]`): a run's metrics, named as in
its log.jsonl (eval rows as `eval/<name>`), also go to the tracker a lab already uses, through
accelerate's own tracker classes. Each is optional and off by default; each works with no network:

  tensorboard  event files under <run dir>/tensorboard   (`tensorboard --logdir <home>`)
  mlflow       MLFLOW_TRACKING_URI, else a file store at <home>/mlruns   (`mlflow ui --backend-store-uri ...`)
  wandb        offline under <run dir>/wandb unless WANDB_MODE says otherwise   (`wandb sync` uploads later)

A resumed run logs into the same tracker run (MLflow's run id and W&B's id are kept in the run
directory's trackers.json). The store stays the record: a tracker that fails mid-run is reported once
on stderr and then left alone, never stopping the training.
"""
from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Callable

from .store import Store, atomic_write_text


class TrackerError(RuntimeError):
    pass


def _tensorboard(run_id: str, run_dir: Path, home: Path, state: dict):
    from accelerate.tracking import TensorBoardTracker

    # flush often: a killed run keeps its curve up to the last few seconds
    return TensorBoardTracker(run_id, run_dir / "tensorboard", flush_secs=5)


def _mlflow(run_id: str, run_dir: Path, home: Path, state: dict):
    import mlflow
    from accelerate.tracking import MLflowTracker

    if not os.environ.get("MLFLOW_TRACKING_URI"):
        # MLflow 3 keeps its file store (no server, no database driver) behind an opt-in; it is what
        # mlflow-skinny can write offline. A lab with a tracking server sets MLFLOW_TRACKING_URI instead.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        mlflow.set_tracking_uri((home / "mlruns").resolve().as_uri())
    return MLflowTracker(experiment_name=state.get("experiment", "harness"), run_id=state.get("mlflow_run_id"),
                         run_name=run_id, tags={"harness.run_id": run_id})


def _wandb(run_id: str, run_dir: Path, home: Path, state: dict):
    from accelerate.tracking import WandBTracker

    os.environ.setdefault("WANDB_MODE", "offline")  # no network here is the normal case, not an error
    (run_dir / "wandb").mkdir(parents=True, exist_ok=True)
    return WandBTracker(os.environ.get("WANDB_PROJECT", state.get("experiment", "harness")), name=run_id,
                        id=state.get("wandb_id", run_id.replace(".", "-")), resume="allow", dir=str(run_dir))


# name -> (builder, the package it needs): `train.report_to` accepts exactly these names
TRACKERS: dict[str, tuple[Callable, str]] = {
    "tensorboard": (_tensorboard, "tensorboard"),
    "mlflow": (_mlflow, "mlflow"),
    "wandb": (_wandb, "wandb"),
}


def flat_config(d: dict, prefix: str = "") -> dict:
    """{'train': {'lr': 1e-5}} -> {'train.lr': 1e-5}; lists and None as text (trackers take scalars)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_config(v, key + "."))
        else:
            out[key] = v if isinstance(v, (int, float, str, bool)) else json.dumps(v)
    return out


def scalars(metrics: dict, split: str = "train") -> dict:
    """The numbers of one log.jsonl row, under the names the trackers show (eval rows: eval/<name>)."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, bool):
            v = int(v)
        if isinstance(v, (int, float)) and math.isfinite(v):
            out[k if split == "train" or k.startswith(f"{split}/") else f"{split}/{k}"] = v
    return out


class Trackers:
    """The trackers of one run: `log(metrics, step, split)` and `finish()` (main process only)."""

    def __init__(self, names: list[str], store: Store, run_id: str, config: dict, experiment: str | None = None):
        self.run_id, self.trackers, self.failed = run_id, {}, set()
        run_dir = store.run_dir(run_id)
        self.state_path = run_dir / "trackers.json"
        state = json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
        state.setdefault("experiment", experiment or "harness")
        for name in names:
            build, package = TRACKERS[name]
            try:
                tracker = build(run_id, run_dir, store.home, state)
                tracker.start()
            except ImportError as e:
                raise TrackerError(f"train.report_to: {name} needs the {package} package ({e}); "
                                   f"pip install 'feedback-harness[trackers]' or {package}") from None
            if name not in state.setdefault("configured", []):  # once per tracker run, not on every resume
                tracker.store_init_configuration(flat_config(config))
                state["configured"].append(name)
            self.trackers[name] = tracker
        if "mlflow" in self.trackers:
            state["mlflow_run_id"] = self.trackers["mlflow"].active_run.info.run_id
        if "wandb" in self.trackers:
            state["wandb_id"] = self.trackers["wandb"].run.id
        if self.trackers:
            atomic_write_text(self.state_path, json.dumps(state, indent=2))

    def log(self, metrics: dict, step: int, split: str = "train") -> None:
        values = scalars(metrics, split)
        for name, tracker in self.trackers.items():
            if name in self.failed:
                continue
            try:
                tracker.log(values, step=step)
            except Exception as e:  # the store has the numbers; a tracker's outage must not stop training
                self.failed.add(name)
                print(f"warning: tracker {name} failed at step {step} ({type(e).__name__}: {e}); "
                      f"no more metrics go to it in this process (the store keeps them all)", file=sys.stderr)

    def finish(self) -> None:
        for name, tracker in self.trackers.items():
            try:
                tracker.finish()
            except Exception as e:
                print(f"warning: tracker {name} did not close cleanly ({type(e).__name__}: {e})", file=sys.stderr)
        self.trackers = {}


def open_trackers(names: list[str], store: Store, run_id: str, config: dict, group: str | None = None,
                  is_main_process: bool = True) -> Trackers:
    """The run's trackers (none when `names` is empty or on a non-main process)."""
    return Trackers(list(names) if is_main_process else [], store, run_id, config, experiment=group)
