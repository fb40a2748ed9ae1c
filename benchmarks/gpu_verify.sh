#!/usr/bin/env bash
# The GPU verification, in one command: everything that needs an NVIDIA GPU, run once and
# written into OUT_DIR, within about 8 minutes on one H100.
#
#   benchmarks/gpu_verify.sh OUT_DIR            # on a machine with a GPU and CuPy
#   benchmarks/gpu_verify.sh OUT_DIR --smoke    # anywhere: the same steps at toy sizes, on
#                                               # NumPy where there is no GPU (checks the script)
#
# Steps (each with its own time limit, each written to OUT_DIR even when it fails):
#   1. env.txt: the GPU (nvidia-smi), Python and the versions of NumPy, CuPy and PyTorch;
#   2. pytest-gpu.txt / .xml: the test suite's GPU part on the CuPy backend (`pytest -m gpu`:
#      every backend-parametrised case with backend "cupy", and tests/test_gpu.py);
#   3. gpu_<name>.json / gpu-benchmark.txt: benchmarks/gpu.py, ours against PyTorch eager on
#      the same GPU (iformer_small 224x224 batch 64 train step and inference, iformer_cifar
#      batch 256 train step, float32; ratios and peak memory);
#   4. cifar-run.txt / cifar-metrics.csv: one short real CIFAR-10 epoch with --backend cupy,
#      from the compact CIFAR-10 copy in GPU_VERIFY_DATA (default .gpu-data/, a folder git
#      ignores: cifar10_jpeg.npz with the build_batches.py, batches.meta and readme.html that
#      unpack it into the official batches); skipped, with the reason, when it is missing;
#   5. summary.txt: one line per step (passed, failed or skipped, and its time).
#
# Nothing is fetched from the network. Python packages missing on the GPU machine (hypothesis,
# autograd, ...) can be brought as wheels in .whl/ (see README, "GPU verification"); they are
# installed into a private folder, not into the machine's Python.
set -uo pipefail

out=${1:?usage: benchmarks/gpu_verify.sh OUT_DIR [--smoke]}
smoke=${2:-}
if [ -n "$smoke" ] && [ "$smoke" != "--smoke" ]; then
  echo "usage: benchmarks/gpu_verify.sh OUT_DIR [--smoke]" >&2
  exit 2
fi
cd "$(dirname "$0")/.." || exit 2
mkdir -p "$out" || exit 2
out=$(cd "$out" && pwd)
python=${PYTHON:-python3}
data=${GPU_VERIFY_DATA:-.gpu-data}
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
: >"$out/summary.txt"

# Wheels brought along for what the machine lacks, into a private target folder.
if compgen -G ".whl/*.whl" >/dev/null; then
  site=$(mktemp -d)
  if "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --target "$site" .whl/*.whl; then
    export PYTHONPATH="$PYTHONPATH:$site"
  else
    echo "wheels in .whl/ did not install" >>"$out/summary.txt"
  fi
fi

# The backend the steps use: CuPy where a GPU answers, NumPy for --smoke without one.
backend=cupy
if ! "$python" -c "import mini_iformer as mi; mi.set_backend('cupy')" 2>"$out/backend.txt"; then
  if [ -z "$smoke" ]; then
    echo "backend: the 'cupy' backend is unavailable: $(tail -1 "$out/backend.txt")" \
      | tee -a "$out/summary.txt"
    exit 1
  fi
  backend=numpy
fi

# step NAME LIMIT_S LOG COMMAND...: run one step, log its output, record the outcome.
step() {
  local name=$1 limit=$2 log=$3
  shift 3
  local start=$SECONDS
  timeout "$limit" "$@" >"$out/$log" 2>&1
  local rc=$?
  local took=$((SECONDS - start))
  local verdict=passed
  [ "$rc" -eq 124 ] && verdict="stopped at its ${limit} s limit"
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && verdict="failed (exit $rc)"
  printf '%-10s %-34s %4d s  (%s)\n' "$name" "$verdict" "$took" "$log" >>"$out/summary.txt"
  return 0
}

# 1. the machine
{
  echo "backend: $backend"
  nvidia-smi 2>&1 || echo "nvidia-smi: not available"
  "$python" - <<'EOF'
import platform
import numpy
print("python", platform.python_version(), "| numpy", numpy.__version__)
for name in ("cupy", "torch", "hypothesis", "autograd", "scipy"):
    try:
        module = __import__(name)
        print(name, getattr(module, "__version__", "?"))
    except Exception as exc:  # a missing package is a fact to report, not a failure
        print(name, "missing:", type(exc).__name__, exc)
EOF
} >"$out/env.txt" 2>&1

# 2. the GPU part of the test suite (on --smoke without a GPU: collected, all skipped)
step tests 270 pytest-gpu.txt "$python" -m pytest -m gpu -q -p no:cacheprovider \
  --junitxml="$out/pytest-gpu.xml"
printf '%-10s %s\n' "" "$(grep -E '(passed|failed|skipped|error)' "$out/pytest-gpu.txt" | tail -1)" \
  >>"$out/summary.txt"

# 3. whole-model speed against PyTorch on the same GPU
step benchmark 120 gpu-benchmark.txt "$python" benchmarks/gpu.py ${smoke:+--smoke} --out "$out"

# 4. a short real CIFAR-10 run on the GPU
if [ -f "$data/cifar10_jpeg.npz" ] && [ -f "$data/build_batches.py" ]; then
  work=$(mktemp -d)
  if [ -n "$smoke" ]; then
    sizes=(--model iformer_cifar_tiny --subset 256 --test-subset 128 --batch-size 64)
  else
    sizes=(--subset 20000 --test-subset 5000 --batch-size 256)
  fi
  step cifar 90 cifar-run.txt bash -c '
    "$1" "$2/build_batches.py" "$3/data" && shift 3 && exec "$@"' _ \
    "$python" "$data" "$work" \
    "$python" train_cifar.py --backend "$backend" --data-dir "$work/data" --no-verify \
    --no-download --epochs 1 --no-progress --out "$work/run" "${sizes[@]}"
  if cp "$work/run/metrics.csv" "$out/cifar-metrics.csv" 2>/dev/null; then
    "$python" - "$out/cifar-metrics.csv" >>"$out/summary.txt" <<'EOF'
import csv, sys
row = list(csv.DictReader(open(sys.argv[1])))[-1]
print(f"{'':10} epoch {row['epoch']}: {float(row['epoch_seconds']):.1f} s, "
      f"{float(row['images_per_second']):.0f} images/s, test Acc@1 {float(row['test_acc1']):.2f}%, "
      f"GPU memory {row['gpu_memory_mib'] or '-'} MiB")
EOF
  fi
  rm -rf "$work"
else
  printf '%-10s %-34s %4s    (%s)\n' cifar "skipped: no $data/cifar10_jpeg.npz" - \
    "see the script's header" >>"$out/summary.txt"
fi

cat "$out/summary.txt"
! grep -q -e failed -e stopped "$out/summary.txt"
