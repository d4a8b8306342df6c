"""Create (or resume) a training run and train it through the shared trainer core: the library
behind `harness train` (harness/commands/train.py), the demo and the studies.

An OAIF run first measures its annotator (harness/evaluation/validity.py) and stops when position
consistency is below `judge.min_consistency` unless `judge.allow_biased: true`. With `resume=true` a
run continues from its last complete checkpoint. A run that fails after it was created, while loading
as well as while training, is marked failed. Under `accelerate launch` every process runs this; the
main process creates or finds the run and shares its id.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from ..config import ConfigError
from ..evaluation import validity  # module, not names: tests swap its functions
from ..store import Store, StoreError, check_run_id


def find_resumable(store: Store, cfg, algo: str) -> str | None:
    """Newest run with this name and algo that was interrupted: not done, and not a failure that left
    nothing to resume (a run that failed mid-training, e.g. on a full disk, continues from its checkpoint)."""
    runs = [r for r in store.list_runs() if r["algo"] == algo and r["name"] == cfg.name and r["status"] != "done"
            and not (r["status"] == "failed" and store.latest_checkpoint(r["run_id"]) is None)]
    return runs[-1]["run_id"] if runs else None


def resolve_init(store: Store, init_from: str | None) -> Path | None:
    """`init_from`: a checkpoint dir, or a run id (its newest complete checkpoint)."""
    if not init_from:
        return None
    path = Path(init_from).expanduser()
    if path.exists():
        return path
    ckpt = store.latest_checkpoint(init_from)
    if ckpt is None:
        raise StoreError(f"init_from: {init_from!r} is neither a directory nor a run with a checkpoint")
    return ckpt


def _share(accelerator, value):
    """The main process's `value` on every process."""
    if accelerator.num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list

    box = [value]
    broadcast_object_list(box, from_process=0)
    return box[0]


def prepare_run(store: Store, cfg, run_id: str | None, group: str | None, accelerator) -> str:
    chosen, error = None, None
    if accelerator.is_main_process:
        try:
            if run_id is not None:
                check_run_id(run_id)  # before any lookup: a path never reaches the home
            if cfg.resume:
                chosen = run_id or find_resumable(store, cfg, cfg.algo)
                if chosen is not None:
                    run = store.get_run(chosen)
                    if run["algo"] != cfg.algo:
                        raise StoreError(f"--run-id {chosen}: is a {run['algo']} run, the config says {cfg.algo}")
                    if run["status"] == "done":
                        raise StoreError(f"--run-id {chosen}: already done; nothing to resume")
            if chosen is None and run_id and store.has_run(run_id):
                raise StoreError(f"--run-id {run_id}: exists already (add resume=true to continue it)")
            if chosen is None:
                chosen = store.create_run(cfg.to_dict(), cfg.algo, task=cfg.data.task, name=cfg.name, run_id=run_id,
                                          group=group)
        except StoreError as e:
            error = str(e)
    chosen, error = _share(accelerator, (chosen, error))
    if error:
        raise StoreError(error)
    return chosen


def record_dtypes(store: Store, run_id: str, config: dict) -> dict:
    """What `dtype: auto` resolves to on this machine (devices.run_dtypes): one line on stderr, and
    kept in the run's env.json under "dtypes" (the machine that last started or resumed the run)."""
    import sys

    from .. import devices

    dtypes = devices.run_dtypes(config)
    m, s = dtypes["model"], dtypes["sampling"]
    mp = dtypes["mixed_precision"]
    print(f"dtypes: model {m['dtype']} on {m['device']} ({m['reason']}); sampling {s['dtype']} ({s['reason']}); "
          f"eval generation {dtypes['generate']['dtype']}; mixed precision {mp['mode']} ({mp['reason']}); cpu {dtypes['cpu_capability']}, {dtypes['threads']} threads",
          file=sys.stderr)
    with contextlib.suppress(OSError, ValueError):
        store.add_environment(run_id, dtypes=dtypes)
    return dtypes


def execute(cfg, store: Store, run_id: str | None = None, group: str | None = None, accelerator=None):
    """Create (or resume) the run and train it; returns (run_id, final metrics). The CLI, the demo
    and the studies all go through here."""
    from .. import models, trainer
    from ..algorithms import get_algorithm, get_builder

    algo = get_algorithm(cfg.algo)
    builder = get_builder(cfg.algo)
    accelerator = accelerator or trainer.make_accelerator(cfg)
    run_id = prepare_run(store, cfg, run_id, group, accelerator)
    if accelerator.num_processes > 1 and cfg.model.device == "auto":
        cfg.model.device = str(accelerator.device)
    try:  # from here on the run exists: any failure marks it failed (never left 'created')
        trainer.seed_everything(cfg.train.seed)  # models built from config (value heads, ...) start the same
        model, tokenizer = models.load_model(cfg.model, store.home, init_from=resolve_init(store, cfg.init_from),
                                             causal_lm=algo.causal_lm)
        if accelerator.is_main_process:  # after the load: a model that is not there is the one error shown
            record_dtypes(store, run_id, cfg.to_dict())
        ref = models.make_reference(model, cfg.model) if algo.needs_reference else None
        source, objective = builder(cfg, store, run_id, model, tokenizer, ref, store.home)
        card = validity_gate(cfg, store, run_id, source, accelerator)
        final = trainer.train(cfg, store, run_id, model, tokenizer, source, objective, ref=ref, accelerator=accelerator)
    except BaseException as e:
        if accelerator.is_main_process and not isinstance(e, KeyboardInterrupt):
            with contextlib.suppress(StoreError):  # a full disk: the original error is the one to show
                store.set_run_status(run_id, "failed", note=f"{type(e).__name__}: {e}"[:500])
        raise
    if card is not None and card.get("note"):  # gold scorer / simulated rater: no card, the reason (gold_eval.task_card)
        final = {**final, "judge_validity": card["note"]}
    elif card is not None:
        final = {**final, "judge_validity": validity.card_line(card), "judge_validity_result_id": card["result_id"],
                 "judge_validity_card": validity.card_rows(card)}
    return run_id, final, accelerator


def validity_gate(cfg, store: Store, run_id: str, source, accelerator) -> dict | None:
    """OAIF (an online annotator): the judge's validity card, computed once per annotator version on
    the main process, logged with the run (split `judge_validity`: the card's result id and its
    figures), then checked: position consistency below `judge.min_consistency` stops the run unless
    `judge.allow_biased`. Other algorithms, or a source without a judge: None."""
    judge = getattr(source, "judge", None)
    if cfg.algo != "oaif" or judge is None:
        return None
    from ..evaluation.gold_eval import task_card

    own = task_card(judge)  # gold / simulated rater: PandaLM/LLMBar pairs are not its prompts (all n/a)
    if own is not None:
        if accelerator.is_main_process:
            print(own[1])
        return own[0]
    card, error = None, None
    if accelerator.is_main_process:
        try:
            card = validity.judge_card(store, judge, store.home, n_pairs=cfg.judge.validity_pairs,
                              data_root=cfg.judge.validity_data)
            figs = {f"{k}/{part}": card[k][part] for k in ("position_consistency", "p_first", "p_longer")
                    for part in ("value", "n", "ci_low", "ci_high")}
            store.log_metrics(run_id, 0, {"result_id": card["result_id"], **figs}, split="judge_validity")
        except (ValueError, OSError) as e:
            error = f"judge validity: {e}"
    card, error = _share(accelerator, (card, error))
    if error:
        raise ConfigError(error)
    validity.check_consistency(card, cfg.judge.min_consistency, cfg.judge.allow_biased, "judge")
    return card
