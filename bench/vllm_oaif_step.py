"""One OAIF step with transformers sampling vs vLLM sampling (a served engine), same run otherwise.

The quickstart OAIF run (configs/oaif_quickstart_rule_shorter.yaml: the embedded SmolLM2-135M as
policy, 4 prompts a step, 2 samples each, temperature 1, `--max-new-tokens`) with the rule annotator
(prefer the shorter response: no judge model, so the step is sampling + one DPO step), run through
`harness train` twice: `sampling.backend: transformers`, then `sampling.backend: vllm` on a `vllm
serve` of the same checkpoint (started here from .venv-vllm unless --url is given). The vLLM step
includes pushing the policy's weights into the engine (sampling.sync_every 1). Step 1 is a warm-up;
the table gives the median of the later steps: time/step_s and its sampling part source/sample_s.
Threads: the trainer's torch threads are the harness's default (all cores) unless OMP_NUM_THREADS
is set; the CPU engine's worker binds one core and leaves one free (vLLM 0.32's default). On a
shared 2-core machine compare OMP_NUM_THREADS=1 too: two torch threads on one free core are slow.

    .venv/bin/python bench/vllm_oaif_step.py [--steps 4] [--max-new-tokens 48] [--url http://127.0.0.1:8000/v1]
    .venv/bin/python bench/vllm_oaif_step.py --smoke --out OUT.json   # tiny random Llama, 2 steps, its own server
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch
from bench_common import machine, tiny_model  # noqa: E402  (bench/ is on sys.path when run as a script)

from harness.cli import main as harness
from harness.models import resolve_model
from harness.store import Store
from harness.vllm_server import start_server

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "oaif_quickstart_rule_shorter.yaml"


def run(home: Path, backend: str, steps: int, max_new: int, url: str | None, policy: str) -> dict:
    over = [f"model.name={policy}", f"train.steps={steps}", "train.checkpoint_every=0",
            f"sampling.max_new_tokens={max_new}", f"sampling.backend={backend}"]
    if url:
        over.append(f"sampling.vllm_url={url}")
    assert harness(["--home", str(home), "train", str(CONFIG), *over, "--run-id", backend]) == 0
    m = Store(home).metrics([backend]).set_index("step").sort_index().iloc[1:]  # step 1: warm-up
    return {k: statistics.median(m[c]) for k, c in (("step_s", "time/step_s"), ("sample_s", "source/sample_s"),
                                                     ("train_s", "time/train_s"))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--url", default=None, help="a running `vllm serve` of the embedded SmolLM2 (dev mode)")
    ap.add_argument("--smoke", action="store_true", help="a tiny random Llama, 2 steps of 8 tokens, its own server")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "vllm_oaif_step.json"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vllm-bench-"))
    if args.smoke:
        args.steps, args.max_new_tokens, args.url = 2, 8, None
    policy = tiny_model(tmp, heads=1) if args.smoke else resolve_model("smollm2-135m-instruct")
    server = None
    url = args.url
    if not url:  # the tiny Llama knows 1024 positions (the served default is 2048)
        server = start_server(policy, tmp / "serve.log", served_name="policy", **({"max_model_len": 1024} if args.smoke else {}))
        url = server.url
    try:
        res = {"smoke": args.smoke, "machine": machine(), "torch_threads": torch.get_num_threads(),
               "steps_timed": args.steps - 1, "max_new_tokens": args.max_new_tokens,
               "transformers": run(tmp / "tf", "transformers", args.steps, args.max_new_tokens, None, policy),
               "vllm_served": run(tmp / "vllm", "vllm", args.steps, args.max_new_tokens, url, policy)}
        if server is not None:
            res["vllm_server_start_s"] = round(server.started_s, 1)
    finally:
        if server is not None:
            server.stop()
    print(f"{'sampling':<14}{'step s':>9}{'sample s':>10}{'train s':>9}")
    for k in ("transformers", "vllm_served"):
        r = res[k]
        print(f"{k:<14}{r['step_s']:>9.2f}{r['sample_s']:>10.2f}{r['train_s']:>9.2f}")
    print(json.dumps({"cpu": res["machine"]["cpu_model"], **res["machine"]["cpu_flags"], "torch_threads": res["torch_threads"]}))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
