"""Random-init models with the SmolLM2-135M and SmolLM2-1.7B architectures, for timing on a machine
the real weights cannot reach (the lent GPU: no network, 64 MiB carried). Same tokenizer, chat
template and shapes as the real models; the weights are noise, so they time code, not learning.

    python bench/random_init_models.py --source DIR_WITH_CONFIG_AND_TOKENIZER --out /tmp
    # -> /tmp/smol135, /tmp/smol1b7 (harness train CONFIG model.name=/tmp/smol1b7 ...)
    python bench/random_init_models.py --smoke --out /tmp/x   # the `tiny` arch from the embedded model's files

`tiny` (2 layers, 32 wide) is for CPU dry runs of the GPU scripts (bench/gpu_check.sh ARCHS=tiny).
Every run also writes OUT/random_init_models.json: what was made, with parameter counts.

See bench/gpu_runs_h200_2026_11_26.sh for the GPU runs recorded in docs/oaif.md, bench/gpu_check.sh for the next.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# SmolLM2-1.7B's shapes on top of the 135M config (vocabulary and tokenizer are shared).
ARCHS = {"smol135": {}, "smol1b7": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24,
                                        num_attention_heads=32, num_key_value_heads=32, head_dim=64),
         "tiny": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=1, head_dim=16)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", help="a SmolLM2-135M dir: config.json + tokenizer files")
    ap.add_argument("--out", default="/tmp")
    ap.add_argument("--archs", nargs="+", default=["smol135", "smol1b7"], choices=list(ARCHS))
    ap.add_argument("--smoke", action="store_true", help="the tiny arch, from the embedded model's files")
    args = ap.parse_args()
    if args.smoke:
        from harness.models import resolve_model

        args.archs, args.source = ["tiny"], args.source or resolve_model("smollm2-135m-instruct")
    if not args.source:
        ap.error("--source is required (or --smoke)")
    src = Path(args.source)
    made = {}
    for name in args.archs:
        out = Path(args.out) / name
        out.mkdir(parents=True, exist_ok=True)
        for f in src.iterdir():
            if f.is_file() and f.name != "config.json" and not f.name.endswith(".safetensors"):
                shutil.copy(f, out)
        cfg = {**json.loads((src / "config.json").read_text()), **ARCHS[name]}
        (out / "config.json").write_text(json.dumps(cfg))
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(out), dtype=torch.float32)
        model.save_pretrained(out)
        made[name] = {"path": str(out), "n_params": sum(p.numel() for p in model.parameters())}
        print(out, f"{made[name]['n_params'] / 1e6:.1f}M parameters", flush=True)
    (Path(args.out) / "random_init_models.json").write_text(json.dumps({"bench": "random_init_models",
                                                                        "smoke": args.smoke, "models": made}))


if __name__ == "__main__":
    main()
