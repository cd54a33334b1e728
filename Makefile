# Two commands do everything on a fresh machine: `make reproduce` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= auto
# the grids of notebooks 02-05 run on a local Dask cluster, one single-threaded worker per core (or per GPU)
EXECUTOR ?= local
# on a GPU: make bench BENCH_JSON=benchmarks/results/train_speed_gpu.json, or every GPU check at once:
# bash benchmarks/gpu_run.sh [OUT_DIR] (default benchmarks/logs/gpu)
BENCH_JSON ?= benchmarks/results/train_speed_cpu.json

.PHONY: install reproduce test lab bench mutants clean

install: $(VENV)/.installed

# torch and torchvision are resolved together from the package index (no exact torch pin).
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

## Run every notebook through papermill (paper profile on a GPU, quick otherwise) and regenerate figures/.
reproduce: install
	$(BIN)/lmvae reproduce --profile $(PROFILE) --executor $(EXECUTOR)

## Unit tests, then every notebook under nbval in the smoke profile, then in the paper-shape profile (the paper's
## settings at toy sizes: its architectures and code paths on the CPU; two notebooks at a time, one thread each).
## Outputs go to .lmvae/, not figures/.
test: install
	LMVAE_PROFILE=smoke $(BIN)/python -m pytest tests notebooks --nbval-lax -p no:cacheprovider -q
	LMVAE_PROFILE=paper-shape OMP_NUM_THREADS=1 $(BIN)/python -m pytest notebooks --nbval-lax -p no:cacheprovider -q \
		-n 2 --dist loadfile

lab: install
	$(BIN)/jupyter lab notebooks

## Mutation testing of the science modules, each against its own tests (not CI): make mutants [MODULE=claims]
## Installs the `mutation` extra (mutmut) on demand; writes benchmarks/results/mutants_report.md and .json.
MODULE ?= all
mutants: $(VENV)/.mutation
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/mutants.py $(MODULE)

$(VENV)/.mutation: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev,mutation]'
	touch $@

bench: install
	$(BIN)/python benchmarks/train_speed.py --json $(BENCH_JSON)
	$(BIN)/lmvae readme

clean:
	rm -rf .lmvae
