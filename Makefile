# Two entry points (README): `make report` runs the review offline on the bundled
# sample; `make test` runs the test suite. Each creates .venv and installs what it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
OUTPUT ?= output

.PHONY: report test sample bench clean

# The exact environment of requirements.lock (hashes checked), then reviewkit itself on top, and the
# git filter that keeps notebooks output-free (nbstripout; nothing happens outside a git checkout).
$(STAMP): pyproject.toml requirements.lock
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	scripts/install-notebook-filter.sh $(BIN)/python
	touch $(STAMP)

report: $(STAMP)
	$(BIN)/reviewkit run --offline

test: $(STAMP)
	$(BIN)/python -m pytest

sample: $(STAMP)
	$(BIN)/python -m tools.build_sample
	$(BIN)/python -m tools.build_sample_screening

bench: $(STAMP)
	$(BIN)/python bench/bench_parse.py

clean:
	rm -rf $(VENV) $(OUTPUT)
