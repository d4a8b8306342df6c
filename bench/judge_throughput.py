"""Judge throughput: logprob mode (one forward, read P("1") vs P("2")) vs generate-then-parse.

Same pairs (the first `--pairs` PandaLM test pairs, read in place from ../shared/data), same model
(the embedded SmolLM2-135M-Instruct), same batch size, in ONE process, interleaved batch by batch
(this machine is shared: a load change then hits every variant alike). Variants:
  logprob-bf16    smollm2-logprob: one forward per order, no generation (the harness default)
  generate-bf16   smollm2-generate: same template and answer prefix, greedy verdict (<= 32 tokens,
                  stops at EOS), parsed: the cheapest generate-then-parse judge
  reasoning-bf16  smollm2-reasoning: explain, then "Verdict: N" (<= 96 tokens), parsed: what
                  LLM-as-a-judge code usually does (FastChat's MT-Bench judge, AlpacaEval CoT)
  logprob-fp32    logprob mode with fp32 weights: what bf16 buys a frozen judge on CPU
Writes bench/results/judge_throughput.json: pairs/s of each, the ratios logprob / generate and
logprob / reasoning (goal >= 5x), parse rates, P(first shown) and logprob-vs-generate agreement.

    .venv/bin/python bench/judge_throughput.py [--pairs 32] [--orders AB] [--variants ...]
    .venv/bin/python bench/judge_throughput.py --pairs 16 --variants logprob-bf16,logprob-fp32 \
        --out bench/results/judge_throughput_dtype.json      # what bf16 buys a frozen judge
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"


def pandalm_pairs(n: int):
    from judges.importers.pandalm import read

    pairs = {}
    for pair, _ in read(SHARED / "pandalm_testset" / "testset-v1.json"):
        pairs.setdefault(pair.record_id, pair)
        if len(pairs) >= n:
            break
    return list(pairs.values())


VARIANTS = {  # name -> (judge config, dtype); the configs share model, template and answer prefix
    "logprob-bf16": ("smollm2-logprob", "bf16"),
    "logprob-fp32": ("smollm2-logprob", "fp32"),
    "generate-bf16": ("smollm2-generate", "bf16"),
    "reasoning-bf16": ("smollm2-reasoning", "bf16"),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=32)
    ap.add_argument("--orders", default="AB", help="AB or AB,BA")
    ap.add_argument("--variants", default="logprob-bf16,generate-bf16,reasoning-bf16",
                    help=f"which of {', '.join(VARIANTS)} to time (the first two give the headline ratio)")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="override the generate configs' max_new_tokens")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "judge_throughput.json"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from harness.config import JudgeRef
    from judges import load_judge
    from judges.backends import TransformersBackend

    orders = tuple(args.orders.split(","))
    pairs = pandalm_pairs(args.pairs)
    names = args.variants.split(",")
    judges = {}
    for name in names:
        config, dtype = VARIANTS[name]
        j = load_judge(JudgeRef(name=config), device="cpu")
        j.cfg.dtype = dtype
        j.backend = TransformersBackend(j.cfg.model, dtype, "cpu")  # one frozen copy per dtype
        if args.max_new_tokens and j.cfg.mode == "generate":
            j.cfg.max_new_tokens = args.max_new_tokens
        j.judge(pairs[:2], orders)  # warm-up: first-call allocations, lazy init
        judges[name] = j
    # Interleaved: every variant labels batch i before any labels batch i+1, so a load change on this
    # shared machine hits all variants alike and the ratios stay meaningful.
    seconds = {n: 0.0 for n in names}
    labels = {n: [] for n in names}
    bs = judges[names[0]].cfg.batch_size
    for i in range(0, len(pairs), bs):
        chunk = pairs[i:i + bs]
        for n in names:
            t = time.perf_counter()
            labels[n] += [l for ls in judges[n].judge(chunk, orders) for l in ls]
            seconds[n] += time.perf_counter() - t
        print(f"{min(i + bs, len(pairs))}/{len(pairs)} pairs: " +
              ", ".join(f"{n} {seconds[n]:.1f}s" for n in names), flush=True)
    results = {}
    for n in names:
        flat = labels[n]
        first = [(l.verdict == "A") == (l.shown_order == "AB") for l in flat if l.verdict in ("A", "B")]
        results[n] = {"config": VARIANTS[n][0], "mode": judges[n].cfg.mode, "dtype": VARIANTS[n][1],
                      "max_new_tokens": judges[n].cfg.max_new_tokens if judges[n].cfg.mode == "generate" else 0,
                      "seconds": round(seconds[n], 2), "pairs_per_s": round(len(pairs) / seconds[n], 4),
                      "parse_rate": round(1 - sum(l.verdict == "unparsed" for l in flat) / len(flat), 3),
                      "p_first_shown": round(sum(first) / len(first), 3) if first else None,
                      "tokens_in_mean": round(sum(l.tokens_in or 0 for l in flat) / len(flat), 1),
                      "tokens_out_mean": round(sum(l.tokens_out or 0 for l in flat) / len(flat), 2)}

    def ratio(a, b):
        return round(results[a]["pairs_per_s"] / results[b]["pairs_per_s"], 2) if {a, b} <= results.keys() else None

    def agree(a, b):
        both = [(x.verdict, y.verdict) for x, y in zip(labels.get(a, []), labels.get(b, [])) if y.verdict != "unparsed"]
        return round(sum(x == y for x, y in both) / len(both), 3) if both else None

    out = {
        "bench": "judge_throughput",
        "what": "pairs/s of the embedded SmolLM2 judge: logprob mode vs generate-then-parse, same pairs/prompt/model",
        "pairs": len(pairs), "orders": list(orders), "batch_size": bs, "results": results,
        "ratio_logprob_vs_generate": ratio("logprob-bf16", "generate-bf16"),
        "ratio_logprob_vs_reasoning": ratio("logprob-bf16", "reasoning-bf16"),
        "ratio_bf16_vs_fp32_logprob": ratio("logprob-bf16", "logprob-fp32"),
        "goal_ratio": 5.0,
        "agreement_logprob_vs_generate": agree("logprob-bf16", "generate-bf16"),
        "env": {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                "machine": platform.machine(), "loadavg_at_end": os.getloadavg(),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S")},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    for n, r in results.items():
        print(f"{n:>15}: {r['pairs_per_s']:.3f} pairs/s ({r['seconds']:.1f}s), parsed {r['parse_rate']:.0%}, "
              f"{r['tokens_out_mean']} tokens out")
    print(f"logprob / generate: {out['ratio_logprob_vs_generate']}x; logprob / reasoning: "
          f"{out['ratio_logprob_vs_reasoning']}x (goal >= 5x); bf16 / fp32: {out['ratio_bf16_vs_fp32_logprob']}x; "
          f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
