"""The committed results stay reproducible: expanding each published sweep with this code gives the
run ids its committed table holds (tuned headline runs selected from the table's own validation
scores), so `bench sweep` on those files finds, resumes and re-collates the same runs."""

import pandas as pd
import pytest

from bench.launch.sweep import load_sweep
from bench.rundir import RUN_ID

from ..conftest import needs_fashion_mnist

PUBLISHED = ["demo", "compute", "recipes", "lejepa_lr"]  # results/<name>.csv made by sweeps/<name>.yaml


@needs_fashion_mnist
@pytest.mark.parametrize("name", PUBLISHED)
def test_a_published_sweep_expands_to_the_run_ids_of_its_committed_table(name, tmp_path):
    table = pd.read_csv(f"results/{name}.csv")
    table = table[table["run"].str.fullmatch(RUN_ID.pattern)]  # not the reference rows (pixels, random)
    scores = dict(zip(table["run"], table["val_knn@20"], strict=True))
    sweep = load_sweep(f"sweeps/{name}.yaml")
    runs, waiting = sweep.ready(tmp_path, score=scores.get)
    assert waiting == 0
    assert sorted(r.run_id for r in runs) == sorted(table["run"])
