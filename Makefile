# recsys: the two commands are `make report` (main job) and `make test`.
# Each creates .venv from the lock file (exact versions) with the project installed
# when it is missing or stale. `make lock` refreshes requirements.lock from pyproject.toml.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PROFILE ?= thesis
SEEDS  ?= 42
CONFIG ?=
LOCK   := requirements.lock
# Every extra, universal over Linux (x86_64 and aarch64; pyproject's [tool.uv] environments), Python 3.11.
UV_COMPILE := $(BIN)/uv pip compile pyproject.toml --all-extras --universal --python-version 3.11 \
              --custom-compile-command 'make lock' --quiet -o $(LOCK)

# Floating point depends on thread counts (KMeans, randomized SVD): pin them.
export OMP_NUM_THREADS=1
export OPENBLAS_NUM_THREADS=1
export MKL_NUM_THREADS=1
export NUMEXPR_NUM_THREADS=1
export PYTHONHASHSEED=0

.PHONY: help venv java-check lock lock-upgrade report report-ci runs test test-fast notebooks lint lab benchmarks clean serve redis

help:
	@echo "make report      run every notebook at PROFILE=$(PROFILE) (SEEDS=$(SEEDS), CONFIG=file.toml) into reports/$(PROFILE)/runs/<id>/ (latest: reports/$(PROFILE)/latest)"
	@echo "make runs        list the kept runs of PROFILE=$(PROFILE) (recsys runs list|compare|prune)"
	@echo "make test        ruff, unit tests, nbval over notebooks/, the ci profile end to end with headline metrics (what CI runs)"
	@echo "make test-fast   the quick tier: no spark, processes, fuzz, notebooks, slow or browser tests (under 2 minutes)"
	@echo "make notebooks   re-execute the stored notebooks in place at the ci profile"
	@echo "make lab         JupyterLab on notebooks/ with the project's kernel (--allow-root when run as root)"
	@echo "make benchmarks  the speed benchmarks (large profile; minutes)"
	@echo "make lock        refresh $(LOCK) from pyproject.toml (keeps existing pins; make lock-upgrade takes the newest)"
	@echo "make serve       the HTTP service on 127.0.0.1:$(PORT) (PORT=8000; trains the thesis model if missing; prints a dev key)"
	@echo "make redis       install redis-server (Debian package) where missing: the multi-worker tests start it"

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r $(LOCK)
	@# setuptools announces its editable finder ("Editable installation", information only) as a warning: silenced by its message
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet --no-deps -e .
	@$(BIN)/python -m pip check >/dev/null || { $(BIN)/python -m pip check; \
	  echo "$(LOCK) does not satisfy pyproject.toml: run 'make lock'"; exit 1; }
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (recsys)" >/dev/null
	@touch $(STAMP)

$(BIN)/uv:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet 'uv>=0.5'

lock: $(BIN)/uv
	$(UV_COMPILE)

lock-upgrade: $(BIN)/uv
	$(UV_COMPILE) --upgrade

venv: $(STAMP)

report: $(STAMP)
	$(BIN)/recsys run --profile $(PROFILE) --seeds $(SEEDS) $(if $(CONFIG),--config $(CONFIG))

report-ci: $(STAMP)
	$(BIN)/recsys run --profile ci

runs: $(STAMP)
	$(BIN)/recsys runs list --profile $(PROFILE)

# The Spark tests (tests/test_spark_*.py) need Java 17+; without it they skip, saying so.
java-check:
	@java -version >/dev/null 2>&1 || echo "NOTE: no Java runtime: the Spark tests will be skipped. Install Java 17+, e.g. 'apt-get install -y openjdk-17-jre-headless'"

test: $(STAMP) java-check
	$(BIN)/ruff check recsys tests benchmarks
	$(BIN)/pytest --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider \
	  --durations=25 tests notebooks

# The quick tier (under 2 minutes): no Spark, no server processes, no fuzzing, no notebooks, nothing slow
# (the markers are registered in pyproject.toml).
test-fast: $(STAMP)
	$(BIN)/pytest -p no:cacheprovider -m "not (spark or processes or fuzz or notebooks or slow or browser)" --durations=10 tests

notebooks: $(STAMP)
	for nb in notebooks/[0-9][0-9]_*.ipynb; do \
	  echo "executing $$nb"; \
	  $(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.kernel_name=python3 --ExecutePreprocessor.record_timing=False "$$nb" || exit 1; \
	done

lint: $(STAMP)
	$(BIN)/ruff check recsys tests benchmarks

# Jupyter refuses to start as root unless told: add --allow-root there (containers, CI machines).
lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

benchmarks: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python "$$b" --profile large || exit 1; done

# The HTTP service (recsys/service): a thesis-profile model, a fresh development admin key, one worker.
MODEL ?= data/models/$(PROFILE)
PORT  ?= 8000
serve: $(STAMP)
	@test -f $(MODEL)/engine/CURRENT || $(BIN)/recsys train --profile $(PROFILE) --out $(MODEL)
	@# one development key, reused: made only when its token file or the keys file is missing
	@test -s $(MODEL)/dev-token -a -s $(MODEL)/dev-keys.json || { rm -f $(MODEL)/dev-keys.json; umask 077; \
	  $(BIN)/recsys keys add --user dev-admin --admin --file $(MODEL)/dev-keys.json > $(MODEL)/dev-token; }
	@echo "development admin token (in $(MODEL)/dev-token; use: curl -H 'Authorization: Bearer <token>' ...):"
	@cat $(MODEL)/dev-token
	@echo "docs: http://127.0.0.1:$(PORT)/docs"
	$(BIN)/recsys serve --model $(MODEL) --api-keys $(MODEL)/dev-keys.json --host 127.0.0.1 --port $(PORT)

redis:
	@command -v redis-server >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; \
	  else sudo apt-get install -y redis-server; fi; }
	@redis-server --version

clean:
	rm -rf reports/ci reports/thesis reports/large .pytest_cache
