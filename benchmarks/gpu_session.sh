#!/usr/bin/env bash
# One prepared GPU session (at most 9 minutes): install, the test suite on CUDA, repair throughput per model,
# then fine-tune the serial-section default (flowunet) for the minutes left; everything lands in $OUT.
#
# Here, before the device call:   python benchmarks/gpu_stage.py        (wheels and data into .gpu/, ignored)
# On the device (carry [".gpu"]):  bash benchmarks/gpu_session.sh
# Test the whole script here on the CPU in about a minute:  bash benchmarks/gpu_session.sh --dry-run
#
# Afterwards, here: score $OUT/flowunet_gpu.pt against the shipped weights on sections no weights saw
# (python benchmarks/bench_targets.py --model <file>, and emrepair eval on sbem_cdeep3m_val_v2), and commit it
# as weights/flowunet.pt only if it beats them; record the figures in docs/benchmarks.md with the machine.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1
BUDGET_S=${GPU_SESSION_SECONDS:-530}
START=$(date +%s)
OUT=${OUT:-$(mktemp -d)}
LOG="$OUT/session.log"
left() { echo $(( BUDGET_S - ($(date +%s) - START) )); }
say() { echo "[gpu_session +$(( $(date +%s) - START ))s] $*" | tee -a "$LOG"; }

# 1. Install: the GPU image has torch, h5py, tifffile, typer, rich, scikit-image and OpenCV, not zarr.
if [[ $DRY -eq 0 ]] && ! python3 -c "import zarr" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .gpu/whl/*.whl >>"$LOG" 2>&1 || { say "wheel install failed"; exit 1; }
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
python3 -c "import torch, emrepair; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
torch.cuda.get_device_name() if torch.cuda.is_available() else '')" 2>&1 | tee -a "$LOG"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >>"$LOG" 2>&1 || true

# 2. The test suite; tests with the `device` fixture run on CPU and CUDA (../shared/data is absent there: those skip).
if [[ $DRY -eq 1 ]]; then TESTS=(tests/test_engine.py -x); T=120; else TESTS=(tests -x); T=170; fi
say "tests (${T}s at most)"
timeout "$T" python3 -m pytest -q -p no:cacheprovider "${TESTS[@]}" >"$OUT/tests.log" 2>&1
say "tests exit $?: $(tail -n 1 "$OUT/tests.log")"

# 3. Throughput per model at 1024^2 and 4096^2: fp32, bf16 autocast, channels_last, torch.compile.
if [[ $DRY -eq 1 ]]; then TP=(--dry-run --device cpu); T=120; else TP=(--seconds 2); T=130; fi
say "throughput (${T}s at most)"
timeout "$T" python3 benchmarks/gpu_throughput.py "${TP[@]}" --models linear flowunet ssan tsain \
    --json "$OUT/throughput.json" 2>"$OUT/throughput.err" | tee -a "$LOG"
say "throughput exit $?"

# 4. Fine-tune the serial-section default on every serial-section stack (each holds out its own every-fifth
#    section; sbem_cdeep3m_val_v2 is never trained on) plus NeuroProof 1, for the time left.
DATA=.gpu/data
[[ -d $DATA ]] || DATA=../shared/data
STACKS=()
for s in isbi2012_train vnc_stack1 cremi_train_crop sbem_cdeep3m_train_v2 neuroproof_medulla_train1; do
    [[ -f $DATA/$s.h5 ]] && STACKS+=("$DATA/$s.h5")
done
if [[ $DRY -eq 1 ]]; then
    STACKS=("${STACKS[@]:0:1}")
    TRAIN=(--device cpu --steps 3 --batch-size 2 --patch-size 64 --val-every 3); T=$(( $(left) > 90 ? 90 : $(left) ))
else
    TRAIN=(--device cuda --steps 1500 --batch-size 16 --patch-size 256 --lr 3e-4 --val-every 100); T=$(( $(left) - 25 ))
fi
say "train flowunet on ${#STACKS[@]} stacks for ${T}s at most"
if [[ ${#STACKS[@]} -gt 0 && $T -gt 20 ]]; then
    timeout -s INT "$T" python3 -m emrepair train "${STACKS[@]}" -o "$OUT/flowunet_gpu.pt" --model flowunet \
        --init flowunet --no-progress "${TRAIN[@]}" >"$OUT/train.log" 2>&1
    say "train exit $?: $(tail -n 2 "$OUT/train.log" | tr '\n' ' ')"
else
    say "train skipped (no stacks or no time)"
fi
rm -f "$OUT"/*.state.pt   # the resume sidecar is large and not needed back
ls -la "$OUT" | tee -a "$LOG"
say "done"
