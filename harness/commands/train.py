"""`harness train CONFIG [key=value ...] [--run-id ID]`: train through the shared trainer core.

An OAIF run first measures its annotator (harness/evaluation/validity.py: position consistency,
P(first shown), P(longer), agreement with held-out human labels; stored once per annotator
version) and stops when position consistency is below `judge.min_consistency` unless
`judge.allow_biased: true`; the card is printed with the training summary.

With `resume=true` it continues the given run (`--run-id`) or the newest unfinished run with the
same name and algo, from its last complete checkpoint (a run that failed before its first checkpoint
is resumed only when named with `--run-id`). A run that fails after it was created, while loading as well as while
training, is marked failed. Under `accelerate launch` every process
runs this command; the main process creates or finds the run and shares its id.
"""
from __future__ import annotations

from ..config import load_config
from ..pipelines.train import execute
from ..console import emit
from ..store import Store, check_run_id


def add_arguments(p):
    p.add_argument("config", help="a run config YAML (see configs/)")
    p.add_argument("overrides", nargs="*", help="dotted.key=value overrides, e.g. train.steps=10 loss.kind=ipo")
    p.add_argument("--run-id", default=None, help="id of a new run, or of the run to resume (with resume=true)")
    p.add_argument("--group", default=None, help="group name stored with the run (e.g. a demo or a study)")


def run(args) -> int:
    cfg = load_config(args.config, args.overrides)
    if args.run_id is not None:
        check_run_id(args.run_id)  # with the config: both checked before anything is created or loaded
    store = Store(args.home)
    run_id, final, accelerator = execute(cfg, store, args.run_id, args.group)
    if accelerator.is_main_process:
        out = {"run_id": run_id, "algo": cfg.algo, "steps": cfg.train.steps, **final}
        emit(out, args.format, title=f"harness train: {run_id}")
    accelerator.wait_for_everyone()
    return 0
