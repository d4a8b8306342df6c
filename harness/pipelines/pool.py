"""The offline pool: prompts sampled ONCE from the initial policy (the OAIF source's own sampling,
k responses each, no training) and labelled by every offline source (pipelines/demo.py sample_once).

Without `oaif.equal_budget`: train.steps batches of train.batch_size prompts, as OAIF would draw
them (an offline run then cycles the decided ones). With it: prompts in the same seeded order until
every source has train.steps x train.batch_size DECIDED pairs, so its offline arm trains on each once,
as OAIF trains on each of its own once; a source already full is not asked again. The pool may spend
train.steps x oaif.max_calls_per_step calls (what the OAIF arm may spend over its steps); a source
still short then is refused, naming the field. Each source's `calls`: the calls it took to fill
its pool (up to the prompt that gave the last pair), comparable with an OAIF arm's.
"""
from __future__ import annotations

from ..algorithms.pairs import calls_per_prompt, check_pool, max_calls, pool_target


def label_pool(source, model, ctx, labellers: dict, cfg, store, run_id: str, sample_batch_size: int) -> dict[str, dict]:
    """Per source name {examples, metrics (one dict per round/step), calls}; `labellers`: name ->
    (label_fn, tie_policy)."""
    from tqdm.auto import tqdm

    out = {n: {"examples": [], "metrics": [], "calls": 0} for n in labellers}
    k = cfg.oaif.k

    def label(step, rows_in, samples, pairs, room: dict | None = None):
        for name, (label_fn, tie_policy) in labellers.items():
            got = out[name]
            if room is not None and room[name] <= 0:
                continue  # full: not asked again
            examples, metrics = source.to_examples(label_fn(pairs, step=step), rows_in, samples, tie_policy)
            calls = len(pairs)
            if room is not None and len(examples) >= room[name]:
                # the pool is full inside this round: count the calls up to the prompt of its last pair
                prompt_of = {}
                for i, p in enumerate(pairs):
                    prompt_of.setdefault(p.pair_id, i // calls_per_prompt(k))
                examples = examples[:room[name]]
                calls = (prompt_of[examples[-1]["pair_id"]] + 1) * calls_per_prompt(k)
            got["examples"] += examples
            got["calls"] += calls
            got["metrics"].append(metrics)
            store.log_metrics(run_id, step, {f"{name}/{m}": v for m, v in metrics.items()})

    if not cfg.oaif.equal_budget:
        steps = list(range(1, cfg.train.steps + 1))
        per_call = max(1, sample_batch_size // (k * cfg.train.batch_size))  # steps whose samples fill one batch
        groups = [steps[i:i + per_call] for i in range(0, len(steps), per_call)]
        for group_steps in tqdm(groups, desc=f"sample pairs once ({len(steps)} steps) + label with each source"):
            for step, (rows_in, samples, pairs, _) in zip(group_steps, source.sample_steps(group_steps, model, ctx)):
                ctx.step = step
                label(step, rows_in, samples, pairs)
        return out

    need, cap, per = pool_target(cfg), cfg.train.steps * max_calls(cfg), calls_per_prompt(k)
    asked, step = 0, 0
    bar = tqdm(total=need * len(out), desc=f"sample once: {need} decided pairs per source (k={k})")
    while (room := {n: need - len(g["examples"]) for n, g in out.items()}) and max(room.values()) > 0:
        n_prompts = min(max(room.values()), max(1, sample_batch_size // k), (cap - asked) // per)
        if n_prompts <= 0:
            break
        step += 1
        ctx.step = step
        [(rows_in, samples, pairs, _)] = source.sample_steps([step], model, ctx, n=n_prompts)
        asked += len(pairs)
        before = sum(len(g["examples"]) for g in out.values())
        label(step, rows_in, samples, pairs, room)
        bar.update(sum(len(g["examples"]) for g in out.values()) - before)
    bar.close()
    for name, got in out.items():
        check_pool(len(got["examples"]), cfg, f"offline source {name}, pool of {asked} pairs asked "
                                              f"(cap train.steps x oaif.max_calls_per_step = {cap})")
    return out
