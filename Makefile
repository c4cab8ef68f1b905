# ssl-wc: two commands do all set-up on a fresh machine.
#   make demo   create .venv, install, build the demo warehouse, start the dashboards
#   make test   create/update .venv and run the whole test suite
#   make venv-ray  add the optional Ray extra (ssl-wc[ray]); `make test` then runs the
#                  Ray tests too (they skip without it)
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ssl-wc-installed
# torch is pinned to 2.13.0: the CPU wheel on Linux machines without a GPU index, the
# MPS build on macOS. Extra pip arguments for torch (e.g. a CPU index URL) go here.
TORCH_PIP_ARGS ?=
PYTEST_ARGS ?=
PORT ?= 8501

.PHONY: demo test venv venv-ray lint bench serve clean-warehouse

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "torch==2.13.0" $(TORCH_PIP_ARGS)
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

venv-ray: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[dev,ray]"

demo: $(STAMP)
	$(BIN)/ssl-wc demo
	$(BIN)/streamlit run dashboards/app.py --server.port $(PORT) --server.headless true

serve: $(STAMP)
	$(BIN)/streamlit run dashboards/app.py --server.port $(PORT) --server.headless true

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check ssl_wc ingest dashboards tests benchmarks notebooks
	$(BIN)/mypy ssl_wc ingest dashboards

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_metrics.py
	$(BIN)/python benchmarks/bench_extract.py
	$(BIN)/python benchmarks/bench_ingest.py --images 139
	$(BIN)/python benchmarks/bench_models.py --images 48
	$(BIN)/python benchmarks/bench_dashboard_queries.py
	$(BIN)/python benchmarks/bench_report.py
	$(BIN)/python benchmarks/bench_faithfulness.py
	if $(BIN)/python -c "import ray" 2>/dev/null; then $(BIN)/python benchmarks/bench_ray.py; \
	else echo "bench_ray.py skipped: make venv-ray first"; fi

clean-warehouse:
	rm -rf warehouse/* 
