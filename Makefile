# Two commands for a newcomer: `make quickstart` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build of torch, installed before anything that depends on torch so pip does not
# pull CUDA wheels. Set TORCH_SPEC= (empty) to keep the torch you already have.
TORCH_SPEC ?= torch==2.13.0
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export RAY_AUTH_MODE ?= disabled

.PHONY: install quickstart test bench bench-overhead reward-table encoder-demo eval-demo clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(if $(TORCH_SPEC),$(PY) -m pip install --quiet '$(TORCH_SPEC)')
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

quickstart: install
	$(PY) scripts/quickstart.py

test: install
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -ra

reward-table: install
	$(PY) scripts/reward_table.py

bench: install
	$(PY) scripts/bench_reward.py --quick --json outputs/bench_reward.json

# the same GRPO steps through verl's main_ppo with our reward and with a constant one (reuses outputs/quickstart)
bench-overhead: install
	$(PY) scripts/bench_reward_overhead.py --repeats 2 --json outputs/bench_reward_overhead.json

encoder-demo: install
	$(PY) scripts/encoder_demo.py

eval-demo: install
	$(PY) scripts/eval_demo.py

clean:
	rm -rf $(VENV) outputs .pytest_cache
