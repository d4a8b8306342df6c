"""Experiment trackers (`train.report_to`, harness/trackers.py): a 2-step training run writes a real
TensorBoard event file and a real MLflow run (file store, no network) whose metrics are the run's
log.jsonl, step for step; W&B writes an offline run; a resumed run logs into the same MLflow run;
a bad name or a missing package is a clear error."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.config import ConfigError, load_config
from harness.store import Store
from harness.trackers import TRACKERS, TrackerError, open_trackers, scalars
from tiny_llama import make_tiny_llama

REPO = Path(__file__).resolve().parents[1]
RULE_CONFIG = REPO / "configs" / "oaif_quickstart_rule_shorter.yaml"


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory, embedded_path) -> str:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama", embedded_path)


def log_rows(store: Store, run_id: str) -> list[dict]:
    return [json.loads(line) for line in (store.run_dir(run_id) / "log.jsonl").read_text().splitlines()]


def tensorboard_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(logdir.rglob("events.out.tfevents.*"))
    assert files, f"no event file under {logdir}"
    out: dict[str, list] = {}
    for f in files:
        acc = EventAccumulator(str(f))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return out


def test_two_step_run_writes_tensorboard_and_mlflow(tmp_path, tiny_path, monkeypatch):
    import mlflow
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    home = tmp_path / "home"
    args = ["--home", str(home), "train", str(RULE_CONFIG), f"model.name={tiny_path}", "train.steps=2",
            "train.batch_size=4", "train.checkpoint_every=0", "sampling.max_new_tokens=8",
            "train.report_to=[tensorboard, mlflow]", "judge.validity_pairs=4", "--run-id", "tracked"]
    assert main(args) == 0
    store = Store(home)
    rows = [r for r in log_rows(store, "tracked") if r["split"] == "train"]
    assert [r["step"] for r in rows] == [1, 2]

    tb = tensorboard_scalars(store.run_dir("tracked") / "tensorboard")
    for name in ("loss", "lr", "judge/p_first", "sample/len_mean", "time/step_s"):
        assert [s for s, _ in tb[name]] == [1, 2], name
        assert [v for _, v in tb[name]] == pytest.approx([r[name] for r in rows], rel=1e-6), name

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # as harness.trackers sets it for the run
    client = mlflow.tracking.MlflowClient(tracking_uri=(home / "mlruns").resolve().as_uri())
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              filter_string="tags.`harness.run_id` = 'tracked'")
    assert len(runs) == 1
    run = runs[0]
    history = client.get_metric_history(run.info.run_id, "loss")
    history = sorted(history, key=lambda m: m.step)
    assert [m.step for m in history] == [1, 2]
    assert [m.value for m in history] == pytest.approx([r["loss"] for r in rows], rel=1e-12)
    logged = {k: v for k, v in rows[-1].items() if k not in ("step", "split")}
    assert set(scalars(logged)) <= set(run.data.metrics) and len(logged) > 10  # every log.jsonl column, same name
    assert run.data.params["train.steps"] == "2" and run.data.params["train.report_to"] == '["tensorboard", "mlflow"]'
    assert json.loads((store.run_dir("tracked") / "trackers.json").read_text())["mlflow_run_id"] == run.info.run_id


def test_resume_logs_into_the_same_mlflow_run_and_eval_rows_are_prefixed(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store = Store(tmp_path / "home")
    run_id = store.create_run({"train": {"lr": 1e-5}}, "dpo", group="g1")
    first = open_trackers(["mlflow"], store, run_id, {"train": {"lr": 1e-5}}, "g1")
    first.log({"loss": 0.7, "note": "text is dropped", "nan": float("nan")}, 1)
    first.log({"loss": 0.6}, 2, split="eval")
    first.finish()
    again = open_trackers(["mlflow"], store, run_id, {"train": {"lr": 1e-5}}, "g1")  # the resume
    again.log({"loss": 0.5}, 3)
    again.finish()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = mlflow.tracking.MlflowClient(tracking_uri=(store.home / "mlruns").resolve().as_uri())
    (exp,) = [e for e in client.search_experiments() if e.name == "g1"]  # the run's group names the experiment
    (run,) = client.search_runs([exp.experiment_id])
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss")] == [(1, 0.7), (3, 0.5)]
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "eval/loss")] == [(2, 0.6)]
    assert "note" not in run.data.metrics and "nan" not in run.data.metrics


def test_wandb_offline_run(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    store = Store(tmp_path / "home")
    run_id = store.create_run({}, "dpo")
    trackers = open_trackers(["wandb"], store, run_id, {"train": {"lr": 1e-5}})
    trackers.log({"loss": 0.7}, 1)
    trackers.finish()
    offline = list((store.run_dir(run_id) / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("*.wandb")), "no offline W&B run written"


def test_bad_tracker_name_and_missing_package(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"train\.report_to.*'tensorbord'.*tensorboard, mlflow, wandb"):
        load_config(None, ["train.report_to=[tensorbord]"], defaults={"algo": "dpo"})
    assert list(TRACKERS) == ["tensorboard", "mlflow", "wandb"]
    # the package cannot be uninstalled inside the test run: an import that fails stands for it
    monkeypatch.setitem(sys.modules, "mlflow", None)
    store = Store(tmp_path / "home")
    with pytest.raises(TrackerError, match=r"train\.report_to: mlflow needs the mlflow package"):
        open_trackers(["mlflow"], store, store.create_run({}, "dpo"), {})


def test_no_trackers_by_default(tmp_path):
    assert load_config(None, [], defaults={"algo": "dpo"}).train.report_to == []
    store = Store(tmp_path / "home")
    run_id = store.create_run({}, "dpo")
    t = open_trackers([], store, run_id, {})
    t.log({"loss": 1.0}, 1)
    t.finish()
    assert not (store.run_dir(run_id) / "trackers.json").exists()
