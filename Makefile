# recsys: the two commands are `make report` (main job) and `make test`.
# Each creates .venv with the project installed when it is missing or stale.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PROFILE ?= thesis
SEEDS  ?= 42

# Floating point depends on thread counts (KMeans, randomized SVD): pin them.
export OMP_NUM_THREADS=1
export OPENBLAS_NUM_THREADS=1
export MKL_NUM_THREADS=1
export NUMEXPR_NUM_THREADS=1
export PYTHONHASHSEED=0
export MPLBACKEND=Agg

.PHONY: help venv java-check report report-ci test test-fast notebooks lint lab benchmarks clean

help:
	@echo "make report      run every notebook at PROFILE=$(PROFILE) (SEEDS=$(SEEDS)) into reports/$(PROFILE)/"
	@echo "make test        ruff, unit tests, nbval over notebooks/, papermill smoke run (what CI runs)"
	@echo "make notebooks   re-execute the stored notebooks in place at the ci profile"
	@echo "make lab         JupyterLab on notebooks/ with the project's kernel"
	@echo "make benchmarks  the speed benchmarks (large profile; minutes)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (recsys)" >/dev/null
	@touch $(STAMP)

venv: $(STAMP)

report: $(STAMP)
	$(BIN)/recsys run --profile $(PROFILE) --seeds $(SEEDS)

report-ci: $(STAMP)
	$(BIN)/recsys run --profile ci

# The Spark tests (tests/test_spark_*.py) need Java 17+; without it they skip, saying so.
java-check:
	@java -version >/dev/null 2>&1 || echo "NOTE: no Java runtime: the Spark tests will be skipped. Install Java 17+, e.g. 'apt-get install -y openjdk-17-jre-headless'"

test: $(STAMP) java-check
	$(BIN)/ruff check recsys tests benchmarks
	$(BIN)/pytest --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider tests notebooks

test-fast: $(STAMP)
	$(BIN)/pytest -p no:cacheprovider -m "not slow" tests

notebooks: $(STAMP)
	for nb in notebooks/[0-9][0-9]_*.ipynb; do \
	  echo "executing $$nb"; \
	  $(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.kernel_name=python3 --ExecutePreprocessor.record_timing=False "$$nb" || exit 1; \
	done

lint: $(STAMP)
	$(BIN)/ruff check recsys tests benchmarks

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

benchmarks: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python "$$b" --profile large || exit 1; done

clean:
	rm -rf reports/ci reports/thesis reports/large .pytest_cache
