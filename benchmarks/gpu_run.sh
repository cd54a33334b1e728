#!/usr/bin/env bash
# The GPU checks of the speed issue, in one go, on a CUDA machine, inside a time budget (a lent GPU is short):
#   1. the tests that touch the GPU (tests/test_cuda.py runs every notebook's smoke profile on device 'cuda');
#   2. the speed benchmark (train_speed_gpu.json), then OCM's memory step eager, graphed and stacked in fp32, TF32 and
#      bf16 (ocm_stacked_cuda.json; issue 38);
#   3. optionally one notebook's paper profile from an empty cache, timed (PAPER_NOTEBOOK=00_mixture_of_vaes), in
#      the time left, as a notebook: `lmvae reproduce --cold` executes the .ipynb through papermill (papermill,
#      ipykernel and nbformat installed from the carried wheels in .whl/, made by gpu_wheels.sh, where the image
#      lacks them); the executed notebook, its figures, tables, claims, run_info and log are packed into
#      paper_<notebook>.tgz. To commit it: `mkdir -p figures/paper && tar xzf paper_<nb>.tgz -C figures/paper`
#      (figures/paper/<nb>/ holds the figures and the executed <nb>.ipynb; `lmvae readme` reads its claims);
#   4. optionally the GPU paths' effect on a trained model (PRECISION=1: gpu_precision.json, and the OCM component's
#      TF32 and bf16 against fp32 over three seeds of 4 epochs, graphed, ocm_precision_cuda.json);
#   5. optionally notebook 04's Table 1 runs at the paper's schedule (OCM_PAPER=1: ocm_paper_runs.py, split MNIST,
#      VAE-ELBO-OCM then VAE-ELBO-Random, seeds OCM_SEEDS, default 0), checkpointed every minute into OCM_CACHE
#      (default benchmarks/logs/gpu/ocm_cache, gitignored): carry that folder to the next lease and they resume;
#      ocm_paper_runs_cuda.json says which runs are complete, with their Table 1 numbers;
#   6. the rest of the test suite in whatever time is left.
# Usage: bash benchmarks/gpu_run.sh [OUT_DIR [DATA_ROOT]]   (DATA_ROOT: a torchvision root with full MNIST)
# OUT_DIR defaults to benchmarks/logs/gpu/, where the committed GPU logs live; the JSON files keep the names they have
# in benchmarks/results/, so committing a measurement is copying its file there.
# GPU_BUDGET_S (default 560) bounds the whole script; every step gets a timeout inside it.
# FAKE_GPU=1 runs the same script on a machine without a GPU (the notebooks then use the CPU; CI tests it so with
# PAPER_PROFILE=smoke); SKIP_TESTS=1 and SKIP_BENCH=1 leave out steps 1, 2 and 5.
set -uo pipefail
out=${1:-benchmarks/logs/gpu}
root=$(realpath "${2:-${LMVAE_DATA:-data}}")
mkdir -p "$out"
out=$(realpath "$out")
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg LMVAE_OFFLINE=1
py=${PYTHON:-python3}
budget=${GPU_BUDGET_S:-560}
SECONDS=0
left() { local s=$((budget - SECONDS)); echo $((s > 1 ? s : 1)); }
at_most() { local l; l=$(left); echo $(($1 < l ? $1 : l)); }
step() { echo "[gpu_run] $(date -u +%T) t=${SECONDS}s: $*" | tee -a "$out/steps.log"; }

if [ -n "${FAKE_GPU:-}" ]; then
    echo "fake device: $(uname -m) CPU (FAKE_GPU=1), no GPU" | tee "$out/gpu.txt"
    device="cpu (FAKE_GPU)"
else
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
    device=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
fi
if [ -z "${SKIP_TESTS:-}" ]; then
    gpu_tests="tests/test_cuda.py tests/test_ocm_graphs.py tests/test_ocm_stacked.py tests/test_training.py tests/test_vae.py tests/test_runner.py"
    step "tests with CUDA present: $gpu_tests"
    LMVAE_PROFILE=smoke timeout "$(at_most "${TEST_TIMEOUT:-150}")" $py -m pytest $gpu_tests -p no:cacheprovider -q \
        -n "${TEST_WORKERS:-12}" -o addopts="" 2>&1 | tee "$out/tests_gpu.log"
fi
if [ -z "${SKIP_BENCH:-}" ]; then
    step "speed benchmark"
    timeout "$(at_most "${BENCH_TIMEOUT:-240}")" $py benchmarks/train_speed.py --device cuda --data-root "$root" \
        --mixture-steps 200 --ensemble-images 25600 --rounds 3 --json "$out/train_speed_gpu.json" 2>&1 | tee "$out/bench.log"
    step "OCM memory step: separate, stacked and graphed; fp32, TF32, bf16"
    timeout "$(at_most "${OCM_TIMEOUT:-150}")" $py benchmarks/ocm_stacked.py --device cuda --rounds 3 \
        --json "$out/ocm_stacked_cuda.json" 2>&1 | tee "$out/ocm_stacked.log"
fi
if [ -n "${PAPER_NOTEBOOK:-}" ]; then
    nb=$PAPER_NOTEBOOK
    profile=${PAPER_PROFILE:-paper}
    paper=$(mktemp -d)
    mkdir -p "$paper/figures/$nb"
    if ! $py -c "import papermill, ipykernel, nbformat" 2>/dev/null; then
        step "installing papermill, ipykernel and nbformat from the carried wheels (.whl/)"
        $py -m pip install --quiet --no-index --find-links .whl papermill ipykernel nbformat 2>&1 | tail -n 3
    fi
    limit=$(at_most "${PAPER_TIMEOUT:-300}")
    step "profile $profile of $nb as a notebook (papermill), from an empty cache, at most ${limit}s"
    start=$SECONDS
    LMVAE_WORK="$paper/work" PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" timeout "$limit" \
        $py -m lmvae_core.cli reproduce --profile "$profile" --only "$nb" --offline --data-root "$root" --cold \
        --out "$paper/figures" --executed "$paper/figures/$nb" >"$paper/figures/$nb.log" 2>&1
    rc=$?
    commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    echo "{\"notebook\": \"$nb\", \"profile\": \"$profile\", \"rc\": $rc, \"seconds\": $((SECONDS - start)), \"limit_s\": $limit, \"device\": \"$device\", \"commit\": \"$commit\", \"cache\": \"empty (a fresh machine)\"}" \
        | tee "$paper/figures/$nb/paper_run.json"
    tail -c 4000 "$paper/figures/$nb.log"
    mv "$paper/figures/$nb.log" "$paper/figures/$nb/run.log"
    (cd "$paper/figures" && tar czf "$out/paper_$nb.tgz" "$nb")
fi
if [ -n "${PRECISION:-}" ]; then
    step "GPU paths against the calibration"
    timeout "$(at_most 200)" $py benchmarks/gpu_precision.py --data-root "$root" --json "$out/gpu_precision.json" \
        2>&1 | tee "$out/precision.log"
    step "OCM component: TF32 and bf16 training against fp32"
    timeout "$(at_most 240)" $py benchmarks/ocm_precision.py --device cuda --data-root "$root" --epochs 4 --seeds 0 1 2 \
        --json "$out/ocm_precision_cuda.json" 2>&1 | tee "$out/ocm_precision.log"
fi
if [ -n "${OCM_PAPER:-}" ]; then
    # notebook 04's Table 1 runs at the paper's schedule, resumed from the carried cache (carry $ocm_cache, gitignored)
    ocm_cache=${OCM_CACHE:-benchmarks/logs/gpu/ocm_cache}
    step "notebook 04 at ${OCM_PROFILE:-paper}: ${OCM_STREAM:-mnist}, VAE-ELBO-OCM then VAE-ELBO-Random, seeds ${OCM_SEEDS:-0}, cache $ocm_cache"
    timeout "$(at_most "${OCM_PAPER_TIMEOUT:-300}")" $py benchmarks/ocm_paper_runs.py --profile "${OCM_PROFILE:-paper}" \
        --stream "${OCM_STREAM:-mnist}" --seeds ${OCM_SEEDS:-0} --cache "$ocm_cache" --data-root "$root" \
        --json "$out/ocm_paper_runs_cuda.json" 2>&1 | tail -n 20 | tee "$out/ocm_paper_runs.log"
fi
if [ -z "${SKIP_TESTS:-}" ]; then
    step "the rest of the test suite, in the time left"
    rest=$(ls tests/test_*.py | grep -v -e test_cuda.py -e test_ocm_graphs.py -e test_ocm_stacked.py -e test_training.py -e test_vae.py \
        -e test_runner.py)
    LMVAE_PROFILE=smoke timeout "$(left)" $py -m pytest $rest -p no:cacheprovider -q -n "${TEST_WORKERS:-12}" \
        -o addopts="" 2>&1 | tail -n 30 | tee "$out/tests_rest.log"
fi
step "done"
