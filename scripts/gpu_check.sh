#!/usr/bin/env bash
# The first thing a session lent a GPU runs: three benchmarks, each under its own time budget, inside 8 minutes on
# an H100, into one results file.
#
#   bash scripts/gpu_check.sh                  # on the GPU machine: writes benchmarks/results/gpu_check.md
#   bash scripts/gpu_check.sh --tiny --out DIR # on a CPU, tiny sizes, a few minutes (tests/test_gpu_check.py)
#
# Parts, in order (GPU budget; --tiny instead):
#   a. benchmarks/bench_personalize.py --full --device cuda: full-size random-init MVDream, phase 1 (invert) and
#      phase 2 (finetune), every memory option the benchmark has, 8 steps each; run twice, the bf16 variants
#      (140 s) then the fp32 ones (110 s), so that one running out of time leaves the other's table.
#      --tiny: the tiny preset on the CPU, the fp32 gradient-checkpointing variant of each phase (the bf16
#      variants are the benchmark's own "not run: CUDA only" rows).
#   b. benchmarks/bench_world_edits.py, the `world` preset's row on the 12 objects of the tuning half, 1 sample,
#      on CUDA (the preset's device is auto), from a fresh work folder (nothing cached) (150 s).
#      --tiny: 1 object, the no-personalisation row (the preset's invert + finetune take minutes on a CPU).
#   c. benchmarks/bench_pretrain.py --device cuda: the world model's training throughput, batches of 64, 128 and
#      256 objects, 10 timed steps each (60 s). --tiny: the CPU, a batch of 2, 1 step.
# Each part runs under `timeout` (its budget, capped by what is left of 465 s in all); a part that fails or runs
# out of time is recorded as such and the next one runs. The results file names the device and the command, then
# per part its status, wall time and the tables the benchmark wrote (or its log's last lines), appended as each
# part ends. Each part's own tables and full log are under OUT/gpu_check/PART/. Exit code 1 when a part failed.
#
# Python: $PYTHON, else .venv/bin/python, else python3 (the lent machine's; wheels in .whl, as for
# scripts/gpu_train_world.sh, are installed for it first).
set -euo pipefail

command="bash scripts/gpu_check.sh $*"
tiny=0
out=
while [ $# -gt 0 ]; do
    case $1 in
        --tiny) tiny=1 ;;
        --out) out=${2:?--out needs a folder}; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
        *) echo "unknown argument: $1 (--tiny, --out DIR)" >&2; exit 2 ;;
    esac
    shift
done
if [ -n "$out" ]; then out=$(realpath -m -- "$out"); fi  # relative to where it was called from
cd "$(dirname "$0")/.."
out=${out:-benchmarks/results}

if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then
        PYTHON=.venv/bin/python
    else
        PYTHON=python3
        if [ -d .whl ]; then
            python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
            export PYTHONPATH=/tmp/site
        fi
    fi
fi

scratch=$(mktemp -d /tmp/gpu-check.XXXXXX)  # the world edits' work folder and a Prefect home: never a shared cache
trap 'rm -rf "$scratch"' EXIT
export PREFECT_HOME=${PREFECT_HOME:-$scratch/prefect} PYTHONUNBUFFERED=1
mkdir -p "$out/gpu_check"
report=$out/gpu_check.md

if [ $tiny = 1 ]; then
    device="CPU ($(nproc) cores; --tiny)"
    deadline=850
elif command -v nvidia-smi >/dev/null && gpu=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader); then
    device=$gpu
    deadline=465
else
    device=CPU
    deadline=465
fi
{
    echo "# GPU check"
    echo
    echo "- device: $device"
    echo "- command: \`$command\`"
    echo "- started: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "- python: $PYTHON; the whole run is capped at $deadline s"
    echo
} >"$report"

failed=0

# part TITLE SLUG BUDGET COMMAND...: runs COMMAND under timeout, appends its outcome and tables to the report
part() {
    local title=$1 slug=$2 budget=$3
    shift 3
    local dir=$out/gpu_check/$slug
    rm -rf "$dir" && mkdir -p "$dir"
    local left=$((deadline - SECONDS)) status rc=0 start=$SECONDS
    if [ $left -lt 10 ]; then
        status="skipped: no time left of the $deadline s"
    else
        if [ "$budget" -gt $left ]; then budget=$left; fi
        echo "== $title (budget $budget s)" >&2
        timeout --kill-after=5 "$budget" "$@" --results "$dir" >"$dir/log.txt" 2>&1 || rc=$?
        case $rc in
            0) status=ok ;;
            124 | 137) status="timed out after $budget s"; failed=1 ;;
            *) status="failed (exit code $rc)"; failed=1 ;;
        esac
    fi
    {
        echo "## $title"
        echo
        echo "- status: $status"
        echo "- wall time: $((SECONDS - start)) s (budget $budget s)"
        echo "- command: \`$* --results $dir\`"
        echo
        local tables
        shopt -s nullglob
        tables=("$dir"/*.md)
        shopt -u nullglob
        if [ ${#tables[@]} -gt 0 ]; then
            for table in "${tables[@]}"; do
                sed 's/^#/###/' "$table"  # its headings below this part's
                echo
            done
        elif [ -f "$dir/log.txt" ]; then
            echo "No table was written. The log's last lines:"
            echo
            echo '```'
            tail -n 30 "$dir/log.txt"
            echo '```'
            echo
        fi
    } >>"$report"
    echo "== $title: $status" >&2
}

if [ $tiny = 1 ]; then
    part "a. personalisation (tiny, CPU): bf16 variants" personalize_bf16 60 \
        "$PYTHON" benchmarks/bench_personalize.py --device cpu --steps 2 --repeats 1 --only bf16
    part "a. personalisation (tiny, CPU): fp32 + gradient checkpointing, phase 1 and 2" personalize_fp32 240 \
        "$PYTHON" benchmarks/bench_personalize.py --device cpu --steps 2 --repeats 1 --timeout 200 \
        --only "fp32 + gradient checkpointing"
    part "b. world edits (tiny, CPU): 1 tuning object, no personalisation" world_edits 300 \
        "$PYTHON" benchmarks/bench_world_edits.py --half tuning --objects 1 --samples 1 --rows base+chosen-word \
        --work "$scratch/world-edits"
    part "c. world model training throughput (tiny, CPU)" pretrain 180 \
        "$PYTHON" benchmarks/bench_pretrain.py --device cpu --batches 2 --steps 1
else
    part "a. personalisation, full-size random-init MVDream on CUDA: bf16 variants" personalize_bf16 140 \
        "$PYTHON" benchmarks/bench_personalize.py --full --device cuda --steps 8 --timeout 60 --only bf16
    part "a. personalisation, full-size random-init MVDream on CUDA: fp32 variants" personalize_fp32 110 \
        "$PYTHON" benchmarks/bench_personalize.py --full --device cuda --steps 8 --timeout 60 --only fp32
    part "b. world edits: the world preset on the 12 tuning objects, 1 sample, CUDA" world_edits 150 \
        "$PYTHON" benchmarks/bench_world_edits.py --half tuning --objects 12 --samples 1 --rows preset \
        --workers "$(($(nproc) < 12 ? $(nproc) : 12))" --work "$scratch/world-edits"
    part "c. world model training throughput on CUDA" pretrain 60 \
        "$PYTHON" benchmarks/bench_pretrain.py --device cuda --batches 64 128 256 --steps 10
fi

echo "- finished after $SECONDS s; $([ $failed = 0 ] && echo 'every part ran' || echo 'a part failed or ran out of time')" >>"$report"
echo "wrote $report ($SECONDS s)" >&2
exit $failed
