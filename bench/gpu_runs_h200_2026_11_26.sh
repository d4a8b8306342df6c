#!/usr/bin/env bash
# The GPU runs recorded in docs/oaif.md (one H200, 2026-11-26), as run then (bench/gpu_check.sh is the next check). Run from the repo root on a CUDA
# machine with torch, transformers, trl, datasets, accelerate, peft, pandas, pyyaml and tqdm;
# SOURCE is a dir holding SmolLM2-135M's config.json and tokenizer files (e.g. the embedded model's
# converted dir, <home>/models/smollm2-135m-instruct, without its weights).
set -x
SOURCE=${SOURCE:?set SOURCE to a SmolLM2-135M config+tokenizer dir}
export PYTHONPATH=$PWD:$PYTHONPATH PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
python3 bench/random_init_models.py --source "$SOURCE" --out /tmp || exit 1
H="python3 -m harness.cli --home /tmp/gpu-home"
C=configs/oaif_quickstart_rule_shorter.yaml
time $H train $C model.name=/tmp/smol135 train.steps=8 --run-id gpu-oaif-135m
timeout -s KILL 45 $H train $C model.name=/tmp/smol135 train.steps=40 --run-id gpu-kill; echo "killed: $?"
time $H train $C model.name=/tmp/smol135 train.steps=40 resume=true --run-id gpu-kill
time $H train $C model.name=/tmp/smol1b7 train.batch_size=16 sampling.max_new_tokens=64 sampling.batch_size=32 \
    train.steps=4 train.checkpoint_every=100 --run-id gpu-oaif-1b7
$H runs
for m in smol135 smol1b7; do
  python3 bench/oaif_step.py --device cuda --model /tmp/$m --settings rule --steps 3 --prompts-per-step 16 \
      --max-new-tokens 64 --out bench/results/oaif_step_gpu_$m.json
done
