# The two commands of the README:
#   make demo   install everything, run sweeps/demo.yaml on Fashion-MNIST, print its leaderboard
#               (a smoke run of the study's protocol: a few minutes after the install, in two lanes)
#   make test   install everything, start the one-node SLURM cluster, lint, run the test suite (.ci/run)
.PHONY: setup demo test

BIN := .venv/bin

setup: .venv/.installed

.venv/.installed: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

# Two lanes of one core each (sweeps/demo.yaml says how the runs are dealt to them); finished runs
# and the cached reference rows (runs/references) are reused when it runs again.
demo: setup
	$(BIN)/bench sweep sweeps/demo.yaml --executor local --parallel 2 --wait
	$(BIN)/bench status sweeps/demo.yaml
	$(BIN)/bench collate sweeps/demo.yaml

test: setup
	bash scripts/slurm-local.sh up --if-possible
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q
