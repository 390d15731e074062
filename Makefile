PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo

.PHONY: demo test test-scale lint clean browser bench flink-up flink-down test-flink

# The venv is rebuilt when the dependency pins change.
$(BIN)/consentgate: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

demo: $(BIN)/consentgate
	$(BIN)/consentgate generate --out $(DEMO_DIR)/input --events 20000 --seed 7
	CONSENTGATE_PSEUDONYM_KEY=$${CONSENTGATE_PSEUDONYM_KEY:-demo-key-not-secret-0123456789abcdef} \
	  $(BIN)/consentgate run --input $(DEMO_DIR)/input --consent $(DEMO_DIR)/input/consent.jsonl \
	  --out $(DEMO_DIR)/run
	@echo "Report: $(abspath $(DEMO_DIR))/run/report.html"

# The report's browser test renders report.html in Debian's headless chromium.
browser:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

# Test files run on two worker processes; a file's tests stay together (module fixtures).
test: $(BIN)/consentgate browser
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

test-scale: $(BIN)/consentgate
	$(BIN)/python -m pytest -q -m scale

# A Flink 1.19 session cluster on localhost (JobManager, two TaskManagers, Beam's job server);
# jars, config, pids and logs in .flink/. The Beam options that submit to it: .flink/options.
# The TaskManagers pass their environment, CONSENTGATE_PSEUDONYM_KEY included, to the SDK workers.
flink-up: $(BIN)/consentgate
	$(BIN)/python deploy/flink/cluster.py up

flink-down:
	@if [ -x $(BIN)/python ]; then $(BIN)/python deploy/flink/cluster.py down; \
	  else python3 deploy/flink/cluster.py down; fi

# The job on the cluster against the in-process runner (brings the cluster up if it is down).
test-flink: $(BIN)/consentgate
	$(BIN)/python -m pytest -q -m flink --durations=0 tests/flink

# Throughput and peak memory of the whole job against a DuckDB floor; figures in $(BENCH_DIR)/bench.json.
# 4M events in four shards by default; more: make bench BENCH_EVENTS=200000 BENCH_ARGS='--profile --multiprocess'
BENCH_EVENTS ?= 4000000
BENCH_DIR ?= .bench
BENCH_ARGS ?=

bench: $(BIN)/consentgate
	BENCH_EVENTS=$(BENCH_EVENTS) BENCH_DIR=$(BENCH_DIR) $(BIN)/python -m tests.benchmarks.bench \
	  --events $(BENCH_EVENTS) --workdir $(BENCH_DIR) $(BENCH_ARGS)

lint: $(BIN)/consentgate
	$(BIN)/ruff check pipelines tests
	$(BIN)/ruff format --check pipelines tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
