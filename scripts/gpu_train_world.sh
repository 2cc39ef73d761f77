#!/usr/bin/env bash
# One lent-GPU session: pretraining throughput, the world model trained from an exported dataset, and the
# full-size MVDream benchmark. Run from the repository root on the GPU machine (its python3 has torch; the
# wheels in .whl, if present, add diffusers and pydantic):
#
#   bash scripts/gpu_train_world.sh DATA.npz.xz OUT_DIR [TRAIN_SECONDS] [DEVICE]
#
# Writes OUT_DIR/world_small (the model folder), OUT_DIR/train.log and the benchmark tables.
set -uo pipefail
data=$1
out=$2
seconds=${3:-360}
device=${4:-cuda}
export PYTHONUNBUFFERED=1
if [ -d .whl ] && [ -z "${NO_WHEELS:-}" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site || exit 1
fi
mkdir -p "$out"
if [ "$device" = cuda ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    timeout 60 python3 benchmarks/bench_pretrain.py --device cuda --batches 64 128 256 --steps 15 2>&1 | grep -v -i warn
fi
python3 -c "import torch, diffusers, transformers; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'transformers', transformers.__version__)"
python3 scripts/pretrain_world.py --data "$data" --out "$out/world_small" --device "$device" --fit-steps-to "$seconds" \
    --config "{\"batch_objects\": ${BATCH:-128}, \"lr\": 4e-4, \"warmup_steps\": ${WARMUP:-300}, \"log_every\": 250, \"checkpoint_every\": 1000000}" \
    2>&1 | grep -v -i -e warn -e "model shards" -e "loading weights" | tee "$out/train.log"
if [ "$device" = cuda ]; then
    timeout 100 python3 benchmarks/bench_mvdiffusion.py --full --device cuda 2>&1 | grep -v -i warn | tail -25
fi
cp benchmarks/results/pretrain.md benchmarks/results/mvdiffusion.md "$out"/ 2>/dev/null
exit 0
