#!/usr/bin/env bash
# The GPU figures the README and lesson 06 ask for, in one run of about 8 minutes on a recent GPU.
#
# What it runs, in this order, each under a time limit so that one slow part cannot eat the rest:
#   1. benchmarks/pretrain_speed.py: minibert against transformers (SDPA) for a full training step,
#      mini at the recipe's batch (128 x 128) in bf16, the same in fp16 with a gradient scaler (a T4's path),
#      and base (batch 64) in bf16. Each prints ms/step, tokens/s, peak memory, MFU and the ratio (goal 1.3x).
#   2. Lesson 06's full-mode recipe (mini, batch 128, sequence length 128, lr 5e-4, a 10,000-step schedule), stopped
#      with Ctrl-C (SIGINT, which saves a checkpoint) after $RECIPE_SECONDS if it has not finished. The run prints
#      held-out MLM / NSP accuracy at each evaluation, and at its end (the CLI's summary) ms per step, minutes per
#      1,000 steps, tokens/s and MFU.
#
# What it leaves out: WikiText-103 is used when MINIBERT_DATA holds it or the hub can be reached; otherwise the
# recipe trains on WikiText-2's test split and evaluates on its validation split (about 400 times smaller than
# WikiText-103, so its accuracies are not the recipe's; its speed is). It says which one it used.
#
#   MINIBERT_DATA=../shared/data bash benchmarks/gpu_report.sh [OUT_DIR]
#
# Writes OUT_DIR/gpu_report.log (everything printed), OUT_DIR/history.json and OUT_DIR/loss_curve.png of the recipe
# run (the checkpoints stay in $RUN_DIR). Without the package installed it runs from the source tree (PYTHONPATH=.):
# torch, tokenizers, safetensors, tqdm, matplotlib and transformers must be importable.
# SMOKE=1 runs every part on the CPU with a tiny model in about 15 seconds, to check the script itself (the tests do;
# SMOKE_LOG_EVERY=1 logs and evaluates every step).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-runs/gpu_report}}
RUN_DIR=${RUN_DIR:-/tmp/minibert_gpu_report_run}
RECIPE_SECONDS=${RECIPE_SECONDS:-300}
mkdir -p "$OUT_DIR"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_DISABLE_PROGRESS_BARS=1
PY=${PYTHON:-python3}

if [[ ${SMOKE:-0} == 1 ]]; then
    speed_runs=("--config tiny --batch 8 --steps 2 --warmup 1 --device cpu")
    recipe=(--config tiny --batch-size 8 --max-steps ${SMOKE_STEPS:-20} --eval-every ${SMOKE_LOG_EVERY:-10} --eval-batches 2
            --log-every ${SMOKE_LOG_EVERY:-10} --num-workers 2 --device cpu)
    RECIPE_SECONDS=${RECIPE_SECONDS_SMOKE:-60}
else
    speed_runs=("--config mini --batch 128 --steps 50 --warmup 10 --dtype bf16"
                "--config mini --batch 128 --steps 50 --warmup 10 --dtype fp16"
                "--config base --batch 64 --steps 30 --warmup 10 --dtype bf16")
    recipe=(--config mini --batch-size 128 --lr 5e-4 --max-steps 10000 --eval-every 1000 --num-workers 2 --log-every 100)
fi

{  # everything from here to the end goes to the screen and to OUT_DIR/gpu_report.log
echo "== $(date -u +%FT%TZ)  $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
$PY -c "import torch, transformers; print('torch', torch.__version__, '| transformers', transformers.__version__,
      '| cuda', torch.cuda.is_available() and torch.cuda.get_device_name(0))"

for args in "${speed_runs[@]}"; do
    echo; echo "== pretrain_speed.py $args"
    timeout 150 $PY benchmarks/pretrain_speed.py $args 2>&1 | grep -v "^Loading weights" || echo "(failed or timed out)"
done

corpus=(--corpus wikitext-103)
if ! $PY -c "from minibert import data; data.load_dataset('wikitext-103', 'validation')" >/dev/null 2>&1; then
    corpus=(--corpus wikitext-2 --split test --eval-split validation)
fi
echo; echo "== the recipe: ${corpus[*]} ${recipe[*]}, stopped after ${RECIPE_SECONDS} s if not done"
rm -rf "$RUN_DIR"
start=$(date +%s)
timeout -s INT -k 60 "$RECIPE_SECONDS" $PY -m minibert pretrain "${corpus[@]}" "${recipe[@]}" --seq-len 128 \
    --no-progress --out "$RUN_DIR"
echo "exit status $?, $(( $(date +%s) - start )) s in all (data preparation included)"
cp "$RUN_DIR"/history.json "$RUN_DIR"/loss_curve.png "$OUT_DIR"/ 2>/dev/null
echo "== done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT_DIR/gpu_report.log"
