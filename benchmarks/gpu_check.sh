#!/usr/bin/env bash
# The GPU check, ready to run on a machine with one NVIDIA GPU and nothing installed but Python 3:
#
#   bash benchmarks/gpu_check.sh [--out DIR] [--python PYTHON] [--dry-run]
#
# From a checkout of this repository it
#   1. records the GPU (nvidia-smi) and makes a fresh venv in DIR/venv,
#   2. installs the package with the `cuda` extra (onnxruntime-gpu with its pip CUDA/cuDNN
#      libraries), the dev tools, onnx and onnxconverter-common (no torch),
#   3. runs the CUDA tests for real, no fakes (tests/test_cuda_real.py, VAEGEN_INFER_REAL_CUDA=1),
#   4. adds an fp16 variant to a copy of every shipped bundle (python -m train variants --fp16),
#   5. checks CUDA against CPU for each: float32 with TF32 off and on, CUDA graphs, I/O binding,
#      the fp16 variant (benchmarks/gpu_parity.py),
#   6. runs benchmarks/latency.py --providers cuda at batches 1 to 4096,
# and writes everything under DIR (default gpu-check-YYYYmmdd-HHMMSS): one log per step,
# summary.txt with each step's exit code and seconds, parity.json and latency/. Every step has a
# time limit (`timeout`), and the limits add up to 8 minutes for up to seven shipped bundles.
#
# --dry-run prints the plan and writes DIR/plan.txt without running anything (no GPU needed):
# tests/test_gpu_check.py runs it. The check itself has never run: this project has no GPU machine.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
out="gpu-check-$(date +%Y%m%d-%H%M%S)"
python=python3
dry=0
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) dry=1 ;;
        --out) out=${2:?--out needs a directory}; shift ;;
        --python) python=${2:?--python needs an interpreter}; shift ;;
        -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown option '$1' (use --out DIR, --python PYTHON or --dry-run)" >&2; exit 2 ;;
    esac
    shift
done

if [ "$dry" = 0 ] && ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "error: no NVIDIA GPU here (nvidia-smi not found); run this on a GPU machine, or pass --dry-run" >&2
    exit 1
fi
mkdir -p "$out/logs"
out=$(cd "$out" && pwd)
venv="$out/venv"
py="$venv/bin/python"
# Bundles with a label-conditioned decoder (label_input, e.g. mnist-saae) have no fp16 variant yet: skipped.
bundles=$(cd "$here/exported" && for d in */; do d=${d%/}; grep -q '"label_input"' "$d/model.json" || echo "$d"; done \
    | LC_ALL=C sort)
: > "$out/summary.txt"
[ "$dry" = 1 ] && : > "$out/plan.txt"
failed=0

# step NAME SECONDS COMMAND...: run with a time limit, log to logs/NAME.log, record the exit code.
step() {
    local name=$1 limit=$2
    shift 2
    if [ "$dry" = 1 ]; then
        echo "[dry-run] $name (limit ${limit}s): $*" | tee -a "$out/plan.txt"
        return 0
    fi
    echo "== $name"
    local started=$SECONDS rc=0
    (cd "$here" && timeout "$limit" "$@") > "$out/logs/$name.log" 2>&1 || rc=$?
    echo "$name rc=$rc seconds=$((SECONDS - started))" | tee -a "$out/summary.txt"
    [ "$rc" = 0 ] || failed=1
}

step gpu 10 nvidia-smi
step venv 30 "$python" -m venv "$venv"
step install 120 "$py" -m pip install -q -e ".[cuda,dev]" onnx onnxconverter-common
step versions 15 "$py" -c "import onnxruntime as o, vaegen_infer as v; print(o.__version__, o.get_available_providers(), v.__file__)"
step cuda-tests 60 env VAEGEN_INFER_REAL_CUDA=1 "$py" -m pytest -q -p no:cacheprovider tests/test_cuda_real.py
step bundles 5 cp -r "$here/exported" "$out/bundles"
for b in $bundles; do
    step "fp16-$b" 12 "$py" -m train variants "$out/bundles/$b" --fp16
done
# shellcheck disable=SC2086
step parity 60 "$py" benchmarks/gpu_parity.py --device cuda --out "$out/parity.json" $(for b in $bundles; do echo "$out/bundles/$b"; done)
step latency 90 "$py" benchmarks/latency.py --providers cuda --engines vaegen-infer,onnxruntime-default \
    --batches 1,8,64,512,4096 --budget 0.5 --rounds 3 --e2e-runs 0 --png-runs 0 --out "$out/latency"

if [ "$dry" = 1 ]; then
    echo "dry run: nothing was run; the plan is in $out/plan.txt"
    exit 0
fi
echo "wrote $out (summary.txt, logs/, parity.json, latency/)"
exit "$failed"
