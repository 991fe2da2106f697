# Two commands on a fresh machine with Python 3.11+ and make: `make demo`, `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The Teams app manifest schema that tests/adapters/test_teams_package.py validates the app
# package against: the current version Microsoft documents, from Microsoft's own npm package
# (downloaded once at install from the package registry, like the Python packages, and
# checked; never at test time). See tests/schemas/teams_manifest_schema.py.
TEAMS_SCHEMA_VERSION := 1.30
TEAMS_SCHEMA := $(VENV)/share/reinforce/MicrosoftTeams.v$(TEAMS_SCHEMA_VERSION).schema.json

.PHONY: demo test check install clean

demo: $(STAMP)
	$(BIN)/reinforce demo $(ARGS)

# The checks first: a lint or type error fails the run before the suite starts.
test: $(STAMP) $(TEAMS_SCHEMA) check
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

$(TEAMS_SCHEMA): tests/schemas/teams_manifest_schema.py
	$(PYTHON) tests/schemas/teams_manifest_schema.py $@

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
