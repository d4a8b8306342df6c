"""`harness overopt [CONFIG]`: reward over-optimisation at small scale (Gao et al. 2022; configs/overopt_cpu.yaml,
harness/pipelines/overopt.py, docs/overopt.md). A reward model on simulated-human labels of the
verifiable task, best-of-n and RLOO against it at increasing KL from the initial policy; prints the
proxy and gold score per KL with 95% CIs, says where gold peaks, stores an `overopt` result and,
with --plot, writes the chart (.png/.svg/.html/.json)."""
from __future__ import annotations

from ..console import emit
from ..store import Store


def add_arguments(p):
    from ..pipelines.overopt import DEFAULT_CONFIG

    p.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG), help="overopt config (default configs/overopt_cpu.yaml)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. seeds=[0] rl.steps=2 evaluation.prompts=4")
    p.add_argument("--plot", default=None, metavar="PATH", help="write the curve there (.png, .svg, .html or .json)")


def _ci(lo, hi) -> str:
    return "" if lo is None or hi is None else f"[{lo:+.3f}, {hi:+.3f}]"


def table(rows: list[dict]) -> list[dict]:
    return [{"method": "best-of-n" if r["method"] == "bon" else "RLOO",
             "n or step": f"{'n' if r['method'] == 'bon' else 'step'}={r['x']}",
             "KL (nats)": f"{r['kl']:.3f}" + (f" {_ci(r['kl_ci_low'], r['kl_ci_high'])}" if r.get("kl_ci_low") is not None else ""),
             "proxy - initial [95% CI]": f"{r['proxy']:+.3f} {_ci(r['proxy_ci_low'], r['proxy_ci_high'])}",
             "gold [95% CI]": f"{r['gold']:.3f} {_ci(r['gold_ci_low'], r['gold_ci_high'])}"} for r in rows]


def run(args) -> int:
    import pandas as pd

    from ..overopt_plot import bend_sentence, overopt_chart
    from ..pipelines.overopt import run_overopt
    from ..plots import save_chart

    store = Store(args.home)
    result = run_overopt(args.config, args.overrides, store)
    if args.plot:
        result["plot"] = str(save_chart(overopt_chart(pd.DataFrame(result["rows"])), args.plot))
    if args.format == "json":
        emit(result, "json")
        return 0
    emit(table(result["rows"]), "table", title=f"reward over-optimisation ({result['group']}; {result['ci_method']})")
    print(f"KL: {result['kl_estimator']}\nproxy: {result['proxy']}\ngold: {result['gold']}")
    for s in result["seeds"]:
        acc, agree = s["rm_eval"].get("eval/reward_acc"), s.get("rm_vs_gold") or {}
        print(f"seed {s['seed']}: reward model {s['rm_run']} on {s['pairs']} labelled pairs (of {s['pairs_sampled']} "
              f"sampled), held-out accuracy vs the rater {acc if acc is None else f'{acc:.2f}'}, orders the initial "
              f"policy's eval samples as gold does on {agree.get('agreement') or float('nan'):.2f} of "
              f"{agree.get('pairs')} pairs; RLOO run {s['rl_run']}; {s['seconds']:.0f} s")
    for b in result["bends"].values():
        if b:
            print(bend_sentence(b))
    m = result["machine"]
    print(f"wall time {result['seconds']:.0f} s on {m.get('cpu') or 'unknown CPU'}, {m['cores']} cores; "
          f"result #{result['result_id']}" + (f"; plot {result['plot']}" if result.get("plot") else ""))
    return 0
