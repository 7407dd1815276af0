# Two entry points a fresh clone needs: `make demo` (the main job on the embedded default) and `make test`.
# Both create .venv and install the pinned dependency set first when needed.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
BIN := $(VENV)/bin

.PHONY: install demo test clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 RAY_AUTH_MODE=disabled $(BIN)/python jobs/augment.py --out runs/demo $(ARGS)

test: $(STAMP)
	HF_HUB_OFFLINE=1 RAY_AUTH_MODE=disabled $(BIN)/python -m pytest -q $(ARGS)

clean:
	rm -rf runs .pytest_cache
