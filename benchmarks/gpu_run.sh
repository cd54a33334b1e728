#!/usr/bin/env bash
# The GPU checks of the speed issue, in one go, on a CUDA machine: the speed benchmark (results_gpu.json),
# the GPU paths' effect on a trained model (precision_gpu.json), then the test suite with CUDA present
# (tests/test_cuda.py runs every notebook's smoke profile on device 'cuda').
# Usage: bash benchmarks/gpu_run.sh OUT_DIR [DATA_ROOT]   (DATA_ROOT: a torchvision root with full MNIST)
set -uo pipefail
out=${1:?usage: gpu_run.sh OUT_DIR [DATA_ROOT]}
root=${2:-${LMVAE_DATA:-data}}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg LMVAE_OFFLINE=1
py=${PYTHON:-python3}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
$py benchmarks/train_speed.py --device cuda --data-root "$root" --mixture-steps 200 --ensemble-images 25600 \
    --rounds 3 --json "$out/results_gpu.json" 2>&1 | tee "$out/bench.log"
$py benchmarks/gpu_precision.py --data-root "$root" --json "$out/precision_gpu.json" 2>&1 | tee "$out/precision.log"
LMVAE_PROFILE=smoke timeout "${TEST_TIMEOUT:-300}" $py -m pytest tests -p no:cacheprovider -q -n "${TEST_WORKERS:-8}" \
    -o addopts="" --continue-on-collection-errors ${TEST_ARGS:-} 2>&1 | tee "$out/tests.log"
