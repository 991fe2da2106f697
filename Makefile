# Two commands on a fresh machine with Python 3.11+ and make: `make demo`, `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The Teams app manifest schema that tests/adapters/test_teams_package.py validates the app
# package against: the current version Microsoft documents, from Microsoft's own npm package
# (fetched once at install, like the Python packages, and checked; never at test time).
TEAMS_SCHEMA_VERSION := 1.30
TEAMS_SCHEMA_NPM := @microsoft/app-manifest@1.1.2
TEAMS_SCHEMA_SHA256 := 3339690aacd9049bc65ade66b258982803d8c6c6d3897a23f8a057b6ebe35479
TEAMS_SCHEMA := $(VENV)/share/reinforce/MicrosoftTeams.v$(TEAMS_SCHEMA_VERSION).schema.json

.PHONY: demo test check install clean

demo: $(STAMP)
	$(BIN)/reinforce demo $(ARGS)

test: $(STAMP) $(TEAMS_SCHEMA)
	$(BIN)/python -m pytest $(ARGS)

# Lint, format and type checks (ruff and mypy, configured in pyproject.toml).
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

install: $(STAMP) $(TEAMS_SCHEMA)

# Re-install only when the project's dependencies change.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

$(TEAMS_SCHEMA):
	@mkdir -p $(@D)
	cd $(@D) && tgz="$$(npm pack --silent $(TEAMS_SCHEMA_NPM) | tail -n 1)" && \
		tar -xzOf "$$tgz" package/build/json-schemas/teams/v$(TEAMS_SCHEMA_VERSION)/MicrosoftTeams.schema.json > $(@F).part && rm -f "$$tgz"
	echo "$(TEAMS_SCHEMA_SHA256)  $@.part" | sha256sum --check --quiet
	mv $@.part $@

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
