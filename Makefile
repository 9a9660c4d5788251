# The two commands of the README:
#   make demo   install everything, run sweeps/demo.yaml on Fashion-MNIST, print its leaderboard
#   make test   install everything, lint, run the test suite (what .ci/run calls)
.PHONY: setup demo test

BIN := .venv/bin

setup: .venv/.installed

.venv/.installed: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

demo: setup
	$(BIN)/bench sweep sweeps/demo.yaml --wait
	$(BIN)/bench status sweeps/demo.yaml
	$(BIN)/bench collate sweeps/demo.yaml

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q
