"""`harness replicate [CONFIG]` (`make study`): the OAIF and robust-DPO papers' comparisons at small
scale on the verifiable task, 3 seeds, a verdict per cell (harness/pipelines/study.py,
configs/study_cpu.yaml, docs/study.md). Resumable: run it again with the same --group and it
reuses every finished (arm, seed) and resumes an interrupted run. Prints the replication table and
writes it as markdown and JSON under <home>/reports/<group>/.

`--pilot` runs (or reads back, the study runner resuming) a short version of the same study, group
`<group>-pilot`, and prints per contrast the seeds that detect the target effect at 80% power given
the pilot's between-seed sd, and the wall time that implies (evaluation/power.py size_from_pilot).
"""
from __future__ import annotations

import json
from pathlib import Path

from ..console import emit
from ..store import Store


def add_arguments(p):
    from ..pipelines.study import DEFAULT_CONFIG

    p.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG), help="study config (default configs/study_cpu.yaml)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. seeds=[0] base.train.steps=2 evaluation.n=8")
    p.add_argument("--group", default=None, help="the study's group (default: its name); the same group resumes")
    p.add_argument("--out", default=None, help="folder for study.md and study.json (default <home>/reports/<group>)")
    p.add_argument("--target", action="append", default=[], metavar="METRIC=EFFECT",
                   help="target effect of a metric, in its unit (default gold_diff=0.1 gold_win=0.1 gold=0.1)")
    p.add_argument("--pilot", action="store_true",
                   help="size the study from a short pilot: seeds per contrast for the target effect at 80%% power")
    p.add_argument("--pilot-steps", type=int, default=2, help="training steps of each pilot arm (default 2)")
    p.add_argument("--pilot-seeds", type=int, default=3, help="seeds of the pilot (default 3; 2 at least)")


def parse_targets(texts: list[str]) -> dict[str, float]:
    """['gold_diff=0.05'] -> the default targets with gold_diff replaced; a clear error otherwise."""
    from ..config import ConfigError
    from ..evaluation.power import DEFAULT_TARGETS

    out = dict(DEFAULT_TARGETS)
    for t in texts:
        metric, _, value = t.partition("=")
        try:
            out[metric.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--target {t!r}: use METRIC=EFFECT, e.g. gold_diff=0.1") from None
        if not out[metric.strip()] > 0:
            raise ConfigError(f"--target {t!r}: the effect must be > 0")
    return out


def run(args) -> int:
    from ..evaluation.replication import relabel
    from ..pipelines.study import run_study, write_outputs

    store = Store(args.home)
    targets = parse_targets(args.target)
    if args.pilot:
        return pilot(args, store, targets)
    summary = relabel(run_study(args.config, args.overrides, store, group=args.group), targets)
    paths = write_outputs(summary, Path(args.out) if args.out else store.home / "reports" / summary["group"])
    if args.format == "json":
        emit(summary, "json")
        return 0
    print(f"\n=== study {summary['group']}: {summary['seconds_this_call'] / 60:.1f} min this call, "
          f"{summary['seconds_all_cells'] / 60:.1f} min over all cells")
    print(paths["markdown"].read_text())
    print(f"written: {paths['markdown']}\n         {paths['json']}")
    return 0


def _prompts_steps(base: dict) -> int:
    from ..pipelines.demo import arm_config

    train = arm_config(base, "oaif", "x").train
    return train.steps * train.batch_size


def pilot(args, store: Store, targets: dict[str, float]) -> int:
    """The pilot through the study runner itself (overrides: fewer steps and seeds), then the sizing."""
    from ..config import ConfigError
    from ..evaluation import power
    from ..pipelines.study import load_study_config, run_study, write_outputs

    if args.pilot_seeds < 2 or args.pilot_steps < 1:
        raise ConfigError(f"--pilot-seeds {args.pilot_seeds} / --pilot-steps {args.pilot_steps}: a pilot needs "
                          "2 seeds or more (an sd) and 1 step or more")
    study, full_base = load_study_config(args.config, args.overrides)
    group = f"{args.group or study.name}-pilot"
    extra = [f"seeds={json.dumps(list(range(args.pilot_seeds)))}", f"base.train.steps={args.pilot_steps}"]
    _, pilot_base = load_study_config(args.config, args.overrides + extra)
    summary = run_study(args.config, args.overrides + extra, store, group=group)
    scale = _prompts_steps(full_base) / _prompts_steps(pilot_base)
    sizing = power.size_from_pilot(summary["contrasts"], power.pilot_arm_seconds(summary["cells"]), targets, scale)
    sizing.update(pilot_group=group, pilot_seeds=summary["seeds"], pilot_budget=summary["budget"],
                  full_steps_x_prompts=_prompts_steps(full_base))
    out = Path(args.out) if args.out else store.home / "reports" / group
    write_outputs(summary, out)
    (out / "sizing.json").write_text(json.dumps(sizing, indent=1, default=str))
    if args.format == "json":
        emit(sizing, "json")
        return 0
    b = summary["budget"]
    print(f"\n=== pilot {group}: {len(summary['seeds'])} seeds x {b['steps']} steps x {b['prompts_per_step']} prompts; "
          f"the study trains {scale:g}x the pilot's steps x prompts (training time scaled by that, evaluation not)")
    rows = [{"contrast": r["contrast"], "metric": r["metric"], "pilot sd": _g(r["sd"]), "target": _g(r["target"]),
             "seeds for 80% power": r["seeds"] if r["seeds"] is not None else "-",
             "wall time (its 2 arms)": _minutes(r["seconds"]), "note": r["note"]} for r in sizing["rows"]]
    emit(rows, "table")
    print(f"every contrast powered: {sizing['seeds'] or '-'} seeds x {len(study.arms)} arms = "
          f"{_minutes(sizing['seconds'])} on this machine (pilot's per-cell seconds)")
    print(f"written: {out / 'sizing.json'}")
    return 0


def _g(x) -> str:
    return "-" if x is None else f"{x:.3g}"


def _minutes(s) -> str:
    return "-" if s is None else f"{s / 60:.1f} min"
