#!/usr/bin/env bash
# The checks to run when a GPU is lent (issue #15), in <= 8 minutes on one H200; one JSON line per
# check on stdout (logs on stderr). Run from the repo root with torch, transformers, accelerate, peft,
# datasets, pandas, pyyaml, tqdm installed. SOURCE: a dir with SmolLM2-135M's config.json and
# tokenizer files, without weights (the lent machine has no network and takes <= 64 MiB), e.g. the
# embedded model's converted dir <home>/models/smollm2-135m-instruct minus model.safetensors.
#
#   SOURCE=/path/to/smol-config bash bench/gpu_check.sh > gpu_check.jsonl
#
# A CPU dry run of the same script (tiny settings, to check it before a device is lent):
#   DEVICE=cpu ARCHS="smol135" STEPS=2 BATCH=2 TOKENS=8 SOURCE=... bash bench/gpu_check.sh
#   bash bench/gpu_check.sh --dry-run   # the same with the 2-layer `tiny` arch, SOURCE = the embedded
#                                       # model's dir: a minute on a CPU (tests/test_bench_smoke.py runs it)
#
#   1. mixed precision learns at lr 5e-7 (fp32 master weights + bf16 autocast), pure bf16 does not
#   2. one OAIF step and one offline DPO step, timed, at the 135M and 1.7B architectures (random
#      weights: they time code, not learning), with MFU (bench/step_report.py says how it is counted)
#   3. a 2-GPU DDP run (configs/accelerate/ddp.yaml) when more than one GPU is visible
set -uo pipefail
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if [ "${1:-}" = --dry-run ]; then
  DEVICE=cpu ARCHS=tiny STEPS=2 BATCH=2 TOKENS=8 EXTRA="judge.validity_pairs=4"
  SOURCE=${SOURCE:-$(python3 -c "from harness.models import resolve_model; print(resolve_model('smollm2-135m-instruct'))")} || exit 1
fi
SOURCE=${SOURCE:?set SOURCE to a SmolLM2-135M config+tokenizer dir}
DEVICE=${DEVICE:-cuda}
ARCHS=${ARCHS:-"smol135 smol1b7"}
STEPS=${STEPS:-4}
BATCH=${BATCH:-16}
TOKENS=${TOKENS:-64}
WORK=${WORK:-/tmp/gpu-check}
EXTRA=${EXTRA:-}  # more overrides for every training run
mkdir -p "$WORK"
H="python3 -m harness.cli --home $WORK/home"
RULE=configs/oaif_quickstart_rule_shorter.yaml
DPO=configs/dpo_hh_cpu.yaml
PAIRS=$(ls ../shared/data/hh_rlhf_harmless_base_test/test.jsonl.gz 2>/dev/null || true)

python3 bench/random_init_models.py --source "$SOURCE" --out "$WORK" --archs $ARCHS >&2 || exit 1

for mode in "float32 bf16" "bfloat16 no"; do
  set -- $mode
  python3 bench/mixed_precision_check.py --device "$DEVICE" --weights "$1" --mixed "$2" --home "$WORK/mp-$1" 2>>"$WORK/log"
done

common="train.steps=$STEPS train.batch_size=$BATCH train.checkpoint_every=0 model.device=$DEVICE $EXTRA"
for arch in $ARCHS; do
  M="$WORK/$arch"
  $H train $RULE model.name="$M" $common sampling.max_new_tokens=$TOKENS sampling.batch_size=$((2 * BATCH)) \
      --run-id "oaif-$arch" >&2 2>>"$WORK/log" \
    && python3 bench/step_report.py --home "$WORK/home" --run-id "oaif-$arch" --model "$M" --check "oaif_step_$arch" \
    || echo "{\"check\": \"oaif_step_$arch\", \"error\": \"see $WORK/log\"}"
  dpo_data=${PAIRS:+data.path=$PAIRS}
  $H train $DPO model.name="$M" $common ${dpo_data} data.max_train=$((BATCH * STEPS)) data.max_eval=0 \
      --run-id "dpo-$arch" >&2 2>>"$WORK/log" \
    && python3 bench/step_report.py --home "$WORK/home" --run-id "dpo-$arch" --model "$M" --check "dpo_step_$arch" \
    || echo "{\"check\": \"dpo_step_$arch\", \"error\": \"see $WORK/log\"}"
done

GPUS=$(python3 -c "import torch; print(torch.cuda.device_count())")
if [ "$DEVICE" = cuda ] && [ "$GPUS" -gt 1 ]; then
  M="$WORK/smol135"
  accelerate launch --config_file configs/accelerate/ddp.yaml -m harness.cli --home "$WORK/home" train $RULE \
      model.name="$M" $common sampling.max_new_tokens=$TOKENS --run-id ddp-2gpu >&2 2>>"$WORK/log" \
    && python3 bench/step_report.py --home "$WORK/home" --run-id ddp-2gpu --model "$M" --check ddp_2gpu_oaif \
    || echo "{\"check\": \"ddp_2gpu_oaif\", \"error\": \"see $WORK/log\"}"
else
  echo "{\"check\": \"ddp_2gpu_oaif\", \"skipped\": \"$GPUS GPU(s) visible on $DEVICE\"}"
fi
