"""Judge throughput: logprob mode (one forward, read P("1") vs P("2")) vs generate-then-parse.

Same pairs (the first `--pairs` PandaLM test pairs, read in place from ../shared/data), same model
(the embedded SmolLM2-135M-Instruct), same batch size, in ONE process, interleaved batch by batch
(this machine is shared: a load change then hits every variant alike). A variant is MODE-DTYPE:
  logprob     smollm2-logprob: one forward per order, no generation (the harness default)
  generate    smollm2-generate: same template and answer prefix, greedy verdict (<= 32 tokens,
              stops at EOS), parsed: the cheapest generate-then-parse judge
  reasoning   smollm2-reasoning: explain, then "Verdict: N" (<= 96 tokens), parsed: what
              LLM-as-a-judge code usually does (FastChat's MT-Bench judge, AlpacaEval CoT)
and DTYPE bf16 or fp32 (frozen weights). The default variants run every mode at `--precision auto`:
bf16 where the CPU has it natively (avx512_bf16 / amx), else fp32 (bf16 is emulated, slower, there).
Writes --out (bench/results/judge_throughput.json): pairs/s of each, the ratios logprob / generate
and logprob / reasoning (goal >= 5x), parse rates, P(first shown) and logprob-vs-generate agreement.

    .venv/bin/python bench/judge_throughput.py [--pairs 32] [--orders AB] [--variants ...]
    .venv/bin/python bench/judge_throughput.py --pairs 16 --variants logprob-bf16,logprob-fp32 \
        --out bench/results/judge_throughput_dtype.json      # what bf16 buys a frozen judge
    .venv/bin/python bench/judge_throughput.py --smoke --out /tmp/judge.json   # tiny random model
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import PRECISIONS, REPO, judge_on, machine, pick_precision, tiny_model, write_json  # noqa: E402

SHARED = REPO.parent / "shared" / "data"


def pandalm_pairs(n: int):
    from judges.importers.pandalm import read

    pairs = {}
    for pair, _ in read(SHARED / "pandalm_testset" / "testset-v1.json"):
        pairs.setdefault(pair.record_id, pair)
        if len(pairs) >= n:
            break
    return list(pairs.values())


MODES = {"logprob": "smollm2-logprob", "generate": "smollm2-generate", "reasoning": "smollm2-reasoning"}
VARIANTS = {f"{m}-{d}": (c, d) for m, c in MODES.items() for d in ("bf16", "fp32")}  # name -> (config, dtype)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=32)
    ap.add_argument("--orders", default="AB", help="AB or AB,BA")
    ap.add_argument("--variants", default=None,
                    help=f"which of {', '.join(VARIANTS)} to time (default: the three modes at --precision)")
    ap.add_argument("--precision", default="auto", choices=PRECISIONS, help="auto: bf16 where native, else fp32")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="override the generate configs' max_new_tokens")
    ap.add_argument("--smoke", action="store_true",
                    help="the judges on a tiny random model, 2 pairs, both dtypes of logprob, 8 new tokens: seconds")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "judge_throughput.json"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import tempfile

    from harness.config import JudgeRef
    from judges import load_judge
    from judges.backends import TransformersBackend

    precision, why = pick_precision(args.precision)
    names = args.variants.split(",") if args.variants else [f"{m}-{precision}" for m in MODES]
    bad = [n for n in names if n not in VARIANTS]
    if bad:
        ap.error(f"--variants: unknown {', '.join(bad)} (known: {', '.join(VARIANTS)})")
    tmp = tempfile.TemporaryDirectory()
    configs = {c: c for c in MODES.values()}
    if args.smoke:
        args.pairs, args.max_new_tokens = 2, 8
        names += [f"logprob-{d}" for d in ("bf16", "fp32") if f"logprob-{d}" not in names]
        tiny = tiny_model(Path(tmp.name))
        configs = {c: judge_on(c, tiny, Path(tmp.name)) for c in configs}
    orders = tuple(args.orders.split(","))
    pairs = pandalm_pairs(args.pairs)
    judges = {}
    for name in names:
        config, dtype = VARIANTS[name]
        j = load_judge(JudgeRef(name=configs[config]), device="cpu")
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

    p = precision

    def agree(a, b):
        both = [(x.verdict, y.verdict) for x, y in zip(labels.get(a, []), labels.get(b, [])) if y.verdict != "unparsed"]
        return round(sum(x == y for x, y in both) / len(both), 3) if both else None

    out = {
        "bench": "judge_throughput",
        "what": "pairs/s of the embedded SmolLM2 judge: logprob mode vs generate-then-parse, same pairs/prompt/model",
        "pairs": len(pairs), "orders": list(orders), "batch_size": bs, "results": results,
        "smoke": args.smoke, "precision": precision,
        "ratio_logprob_vs_generate": ratio(f"logprob-{p}", f"generate-{p}"),
        "ratio_logprob_vs_reasoning": ratio(f"logprob-{p}", f"reasoning-{p}"),
        "ratio_bf16_vs_fp32_logprob": ratio("logprob-bf16", "logprob-fp32"),
        "goal_ratio": 5.0,
        "agreement_logprob_vs_generate": agree(f"logprob-{p}", f"generate-{p}"),
        "machine": {**machine(precision, why), "arch": platform.machine()},
    }
    tmp.cleanup()
    write_json(args.out, out)
    for n, r in results.items():
        print(f"{n:>15}: {r['pairs_per_s']:.3f} pairs/s ({r['seconds']:.1f}s), parsed {r['parse_rate']:.0%}, "
              f"{r['tokens_out_mean']} tokens out")
    print(f"logprob / generate: {out['ratio_logprob_vs_generate']}x; logprob / reasoning: "
          f"{out['ratio_logprob_vs_reasoning']}x (goal >= 5x); bf16 / fp32: {out['ratio_bf16_vs_fp32_logprob']}x; "
          f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
