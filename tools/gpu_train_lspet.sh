#!/usr/bin/env bash
# One device call that trains on a lent GPU from a carried crop cache and leaves fp16 weights,
# metrics, curves and the log in $OUT (the device tool brings back 8 files of <= 16 MiB: full
# checkpoints stay on the device in $WORK).
#
# Prepare on the CPU machine, once (48.6 MiB at q75 for LSP-Extended's 9,000 persons, 192x144 crops):
#   stnet cache configs/stnet_1s_lspet_128x96_b32x1_e60.yaml -o .carry/lspet_q75.npz --quality 75
#   echo /.carry/ >> .git/info/exclude
# Rehearse on the CPU (a tiny budget): OUT=/tmp/gpu_out MINUTES=0.3 WORKERS=2 bash tools/gpu_train_lspet.sh
# Device call: run(command="bash tools/gpu_train_lspet.sh", carry=[".carry"], timeout_s=600)
#   second call, same recipe and wall time for the baseline (its 58 MB fp16 weights would not come back,
#   so only metrics and curves): MODEL=hrnet_w32 PACK=0 bash tools/gpu_train_lspet.sh
#
# Settings (environment): MODEL (stnet_1s), MINUTES of training (8), INPUT HxW (128x96), BATCH (64),
# LR (0.002 for batch 64), WORKERS (14), CACHE (.carry/lspet_q75.npz), RECIPE, NAME of the packed weights,
# PACK (1: write fp16 weights into $OUT).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-stnet_1s}
MINUTES=${MINUTES:-8}
INPUT=${INPUT:-128x96}
BATCH=${BATCH:-64}
LR=${LR:-0.002}
WORKERS=${WORKERS:-14}
CACHE=${CACHE:-.carry/lspet_q75.npz}
RECIPE=${RECIPE:-configs/stnet_1s_lspet_128x96_b32x1_e60.yaml}
NAME=${NAME:-${MODEL}.lspet_${INPUT}_gpu}
OUT=${OUT:?set OUT to the folder whose files come back}
WORK=${WORK:-/tmp/stnet_gpu_run_${MODEL}}
H=${INPUT%x*}
W=${INPUT#*x}
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
mkdir -p "$OUT"
python3 - <<'PY' | tee "$OUT/device.txt"
import torch, platform
print("torch", torch.__version__, "| python", platform.python_version(), "|",
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU: CPU rehearsal")
PY
CMD="stnet train $RECIPE --output-dir $WORK --set model.name=$MODEL --set input_size=[$H,$W] \
--set train.kind=cache --set train.ann_file=$CACHE --set val.kind=cache --set val.ann_file=$CACHE \
--set schedule.time_budget_min=$MINUTES --set schedule.decay=cosine --set schedule.epochs=210 \
--set schedule.warmup_iters=300 --set optim.lr=$LR --set runtime.batch_size=$BATCH \
--set runtime.workers=$WORKERS --set runtime.amp=auto --set runtime.channels_last=true \
--set runtime.tensorboard=false --set runtime.log_interval=100"
echo "$CMD" > "$OUT/command.txt"
set +e
python3 -m stnet.cli ${CMD#stnet } 2>&1 | tee "$OUT/train.log"
rc=${PIPESTATUS[0]}
set -e
cp "$WORK/metrics.jsonl" "$OUT/" 2>/dev/null || true
cp "$WORK/curves.png" "$OUT/" 2>/dev/null || true
if [ -f "$WORK/best.pt" ] && [ "${PACK:-1}" = 1 ]; then
  python3 -m stnet.cli pack "$WORK/best.pt" --name "$NAME" --out-dir "$OUT" --command "$CMD" 2>&1 | tail -1
fi
ls -la "$OUT"
exit "$rc"
