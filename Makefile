# handoff: two commands do everything on a fresh Debian machine.
#   make demo   set up (venv + pinned deps) and run the main job on built-in demo data
#   make test   set up and run the whole test suite
VENV   ?= .venv
PYTHON ?= python3
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: setup demo test browser postgres java lint bench clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -U pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/handoff demo

test: setup browser postgres java
	$(BIN)/python -m pytest

# Browser tests drive Debian's chromium through Playwright (playwright's own browser download
# cannot work offline). Installed once, as root, when missing.
browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; fi; }

# Database-source tests start their own throwaway PostgreSQL cluster (tests/pgcluster.py) with Debian's
# server binaries: installed once, as root, when missing. No cluster of the package is used.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; fi; }

# The Spark tests run PySpark in local mode on a Java 17 runtime: Debian's headless OpenJDK, installed
# once, as root, when there is no `java`.
java:
	@command -v java >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless; fi; }

lint: setup
	$(BIN)/ruff check handoff_lib tests bench

bench: setup
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf outputs/demo-data outputs/demo
