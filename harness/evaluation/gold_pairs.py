"""Policy pairs on a verifiable task, for scoring annotators against gold (`harness agreement --gold`).

`policy_pairs(task, split, store)` samples k responses per prompt of the task's split from a policy
(the embedded SmolLM2-135M-Instruct by default; any name `harness eval --policy` takes: a model, a
run id), stores them as samples, and pairs them: all k-choose-2 per prompt, or a seeded subset of
`pairs_per_prompt`. Two samples with the same text are not paired (every annotator could only tie
or follow the position on them); `pair_stats` counts them.

Resumable: the samples are stored under one sample run id per (task, split prompts, policy, k,
sampling, seed), chunk by chunk of `CHUNK` prompts, each chunk sampled from its own torch seed; a
second call reads them back and samples only the prompts it lacks, so the pairs are the same texts
and every label already in the store is reused by the label cache.

Why these defaults (measured under the CPU lock, reported in the helper's report): at temperature
1.0 and 64 new tokens SmolLM2-135M's samples of one prompt differ often enough in the constraints
they meet (and in being degenerate) that gold decides a useful share of the pairs, while four
samples per prompt keep the sampling + judging of the default annotators within minutes.
"""
from __future__ import annotations

import gc
import random
from itertools import combinations

from ..records import Pair, content_hash, prompt_text

DEFAULT_POLICY = "smollm2-135m-instruct"
SAMPLES_PER_PROMPT = 4
MAX_NEW_TOKENS = 64
TEMPERATURE = 1.0
CHUNK = 8            # prompts per sampling chunk: the unit of resumption
SAMPLE_STEP = 0      # samples of a gold-pairs run live at step 0


def sample_run_id(task: str, split: str, model: str, k: int, max_new_tokens: int, temperature: float,
                  seed: int, prompts: list[str] = ()) -> str:
    """The sample run id these samples are stored under (a valid run id: letters, digits, - and .);
    `prompts` (the whole split's texts) makes an edited prompts file a new run, not a mismatch."""
    return "goldpairs-" + content_hash(task, split, model, k, max_new_tokens, temperature, seed, list(prompts), n=12)


def subset_of(row: dict) -> str:
    """The pair's subset: the prompt's group (seen/unseen constraints, ...) and its constraint types."""
    types = "+".join(c["type"] for c in row.get("constraints", []))
    return f"{row.get('group') or '(none)'}:{types}"


def _stored(store, run_id: str) -> dict[int, dict]:
    """index -> sample row of what is stored under `run_id`."""
    import json

    df = store.samples_df(run_id)
    out = {}
    for r in df.to_dict("records"):
        meta = json.loads(r.get("meta_json") or "{}")
        out[int(meta["index"])] = {**r, "meta": meta}
    return out


def sample_responses(task, rows: list[dict], store, run_id: str, model: str, k: int, max_new_tokens: int,
                     temperature: float, seed: int, home=None, progress: bool = True) -> list[list[str]]:
    """k responses per row (in row order), sampled where not stored yet; stored chunk by chunk.

    The model is loaded as `harness eval` loads a policy (pipelines.evaluate.resolve_policy, models.load_model) and
    sampled with the harness sampler (sampling.make_sampler), not a loop of its own."""
    import torch

    from ..pipelines.evaluate import resolve_policy
    from ..config import DataConfig, SamplingConfig

    have = {i: r for i, r in _stored(store, run_id).items()  # only samples of the very prompt at that index
            if i // k < len(rows) and r["prompt"] == prompt_text(rows[i // k]["prompt"])}
    # stored samples are never sampled again (a longer --limit adds prompts, keeps the old ones); the
    # missing rows go in chunks, each seeded by its first row, so a killed call resumes as it would have run
    missing = [i for i in range(len(rows)) if any(i * k + j not in have for j in range(k))]
    todo = [missing[i:i + CHUNK] for i in range(0, len(missing), CHUNK)]
    if todo:
        from ..models import load_model
        from ..sampling import make_sampler

        spec = resolve_policy(model, store)
        if spec.model_cfg is None:
            raise ValueError(f"policy {model!r}: gold pairs need a model or a run to sample from (got {spec.kind})")
        sampling = SamplingConfig(temperature=temperature, max_new_tokens=max_new_tokens, batch_size=16)
        m, tok = load_model(spec.model_cfg, home, for_training=False, init_from=spec.init_from, role="generate")
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=sum(len(c) for c in todo), desc=f"sample {spec.name} x{k}", unit="prompt")
        try:
            sampler = make_sampler(sampling, m, tok, DataConfig(task=task.name), system=task.spec.system)
            for c in todo:
                # one seed per chunk (its first row): a resumed call samples what the first would have
                torch.manual_seed(seed * 1_000_003 + c[0])
                got = sampler.sample([rows[i]["prompt"] for i in c], k)
                out = []
                for i, samples in zip(c, got):
                    for j, s in enumerate(samples):
                        meta = {"index": i * k + j, "prompt_id": rows[i].get("id"), "j": j}
                        out.append(s.as_row(prompt_text(rows[i]["prompt"]), i * k + j, spec.name, meta))
                store.add_samples(run_id, SAMPLE_STEP, out)
                have.update({r["index"]: {"response": r["response"], "policy": r["policy"]} for r in out})
                if bar is not None:
                    bar.update(len(c))
        finally:
            if bar is not None:
                bar.close()
            del m
            gc.collect()
    return [[have[i * k + j]["response"] for j in range(k)] for i in range(len(rows))]


def make_pairs(task_name: str, split: str, rows: list[dict], responses: list[list[str]], policy: str,
               pairs_per_prompt: int | None = None, seed: int = 0, source: str | None = None) -> tuple[list[Pair], int]:
    """(pairs, n_identical): per prompt, every two samples (i < j: response_a is the earlier sample,
    both drawn alike) with different text, or a seeded subset of `pairs_per_prompt` of them."""
    pairs, identical = [], 0
    for row, texts in zip(rows, responses):
        combos = list(combinations(range(len(texts)), 2))
        if pairs_per_prompt is not None and pairs_per_prompt < len(combos):
            combos = sorted(random.Random(f"gold-pairs:{seed}:{row.get('id')}").sample(combos, pairs_per_prompt))
        for a, b in combos:
            if texts[a] == texts[b]:
                identical += 1
                continue
            pairs.append(Pair(prompt=prompt_text(row["prompt"]), response_a=texts[a], response_b=texts[b],
                              source=source or f"policy:{policy}", dataset=f"{task_name}-{split}",
                              subset=subset_of(row), record_id=f"{row.get('id')}:{a}-{b}", policy_a=policy,
                              policy_b=policy, reference=row.get("reference"),
                              meta={"prompt_id": row.get("id"), "constraints": [c["type"] for c in row["constraints"]],
                                    "group": row.get("group"), "samples": [a, b]}))
    return pairs, identical


def gold_share(task_name: str, pairs: list[Pair]) -> dict:
    """How many pairs gold decides (its verdict A or B; equal gold scores are ties, not usable for
    accuracy), as a proportion with a 95% Wilson CI; plus how many differ in (whitespace) word count."""
    from judges.gold import make_gold_judge

    from .validity import n_words, proportion

    gold = make_gold_judge(task_name)
    verdicts = [labs[0].verdict for labs in gold.judge(pairs, ("AB",))]
    decided = sum(v in ("A", "B") for v in verdicts)
    diff_len = sum(n_words(p.response_a) != n_words(p.response_b) for p in pairs)
    return {"decided": proportion(decided, len(pairs), "pairs gold decides (A or B) / pairs"),
            "ties": sum(v == "tie" for v in verdicts), "unparsed": sum(v == "unparsed" for v in verdicts),
            "n_pairs": len(pairs), "n_length_differs": diff_len}


def policy_pairs(task: str, split: str, store, model: str = DEFAULT_POLICY,
                 samples_per_prompt: int = SAMPLES_PER_PROMPT, max_new_tokens: int = MAX_NEW_TOKENS,
                 temperature: float = TEMPERATURE, seed: int = 0, limit: int | None = None,
                 pairs_per_prompt: int | None = None, home=None, progress: bool = True,
                 stats: dict | None = None) -> list[Pair]:
    """Pairs of the policy's own samples on a verifiable task's split (module docstring).

    `limit`: only the first N prompts of the split. `stats` (a dict, filled in): sample_run, n_prompts,
    n_identical and `gold_share` (the share of pairs gold decides, Wilson CI)."""
    from ..tasks import load_task

    if samples_per_prompt < 2:
        raise ValueError(f"gold pairs: samples_per_prompt must be >= 2, got {samples_per_prompt}")
    t = load_task(task)
    gold_rows = t.gold_rows()
    if not gold_rows:
        raise ValueError(f"gold pairs: task {t.name} is not verifiable (its prompts carry no constraints)")
    rows = [r for r in t.prompts(split) if prompt_text(r["prompt"]) in gold_rows]
    run_id = sample_run_id(t.name, split, model, samples_per_prompt, max_new_tokens, temperature, seed,
                           [prompt_text(r["prompt"]) for r in rows])
    if limit is not None:
        rows = rows[:limit]
    if not rows:
        raise ValueError(f"gold pairs: task {t.name} has no {split} prompts with constraints")
    responses = sample_responses(t, rows, store, run_id, model, samples_per_prompt, max_new_tokens, temperature,
                                 seed, home, progress)
    pairs, identical = make_pairs(t.name, split, rows, responses, model, pairs_per_prompt, seed)
    if stats is not None:
        stats.update({"sample_run": run_id, "n_prompts": len(rows), "samples_per_prompt": samples_per_prompt,
                      "max_new_tokens": max_new_tokens, "temperature": temperature, "seed": seed,
                      "policy": model, "n_identical": identical, "gold_share": gold_share(task, pairs)})
    return pairs


__all__ = ["DEFAULT_POLICY", "MAX_NEW_TOKENS", "SAMPLES_PER_PROMPT", "TEMPERATURE", "gold_share", "make_pairs",
           "policy_pairs", "sample_run_id", "subset_of"]
