"""Random-init models with the SmolLM2-135M and SmolLM2-1.7B architectures, for timing on a machine
the real weights cannot reach (the lent GPU: no network, 64 MiB carried). Same tokenizer, chat
template and shapes as the real models; the weights are noise, so they time code, not learning.

    python bench/random_init_models.py --source DIR_WITH_CONFIG_AND_TOKENIZER --out /tmp
    # -> /tmp/smol135, /tmp/smol1b7 (harness train CONFIG model.name=/tmp/smol1b7 ...)

See bench/gpu_runs_h200_2026_11_26.sh for the GPU runs recorded in docs/oaif.md, bench/gpu_check.sh for the next.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

# SmolLM2-1.7B's shapes on top of the 135M config (vocabulary and tokenizer are shared).
ARCHS = {"smol135": {}, "smol1b7": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24,
                                        num_attention_heads=32, num_key_value_heads=32, head_dim=64)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", required=True, help="a SmolLM2-135M dir: config.json + tokenizer files")
    ap.add_argument("--out", default="/tmp")
    ap.add_argument("--archs", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    args = ap.parse_args()
    src = Path(args.source)
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
        print(out, f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters", flush=True)


if __name__ == "__main__":
    main()
