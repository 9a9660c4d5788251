"""The comparison protocol of issue 12: tuning selects on a validation split and never reads test, the
headline probe reads the same views for every method, gains are paired with each method's own init,
and rankings say when neighbours are not separated. Fixture run folders carry hand-written numbers."""

import math

import numpy as np
import pytest
import yaml
from scipy import stats

from bench.config.runfile import config_hash, write_config
from bench.evals import run as evals_run
from bench.launch.sweep import load_sweep
from bench.results.collate import collate
from bench.results.compute import compute_table
from bench.results.summary import summarize, welch_p
from bench.rundir import EVAL, SUMMARY, write_json
from bench.train.engine import train

from ..conftest import TINY_EVAL, tiny_config

# --- tuning ---------------------------------------------------------------------------------


def tuned_sweep(tmp_path):
    spec = {
        "name": "tuned",
        "budget": {"kind": "steps", "value": [2, 4]},
        "base": {
            "backbone": "vit_nano_patch4",
            "data": {"name": "synthetic", "image_size": 16},
            "optim": {"batch_size": 16},
            "ijepa": {"predictor_depth": 1, "predictor_width": 48, "mask": {"num_targets": 2, "min_keep": 0}},
            "eval": TINY_EVAL,
        },
        "grid": {"method": ["ijepa"]},
        "seeds": [0, 1, 2],
        "tune": {"grid": {"optim.lr_factor": [1, 4, 16]}, "budget": 2, "seed": 7},
        "random_init": True,
    }
    path = tmp_path / "tuned.yaml"
    path.write_text(yaml.safe_dump(spec))
    return load_sweep(path)


def test_tuning_runs_first_then_the_selected_setting_over_the_seeds(tmp_path):
    sweep = tuned_sweep(tmp_path)
    tuning = [r for r in sweep.runs if r.role == "tuning"]
    assert [r.config.optim.lr_factor for r in tuning] == [1, 4, 16]
    assert {(r.config.seed, r.config.budget.value, r.config.eval.scope) for r in tuning} == {(7, 2, "val")}
    inits = [r for r in sweep.runs if r.role == "init"]
    assert sorted(r.config.seed for r in inits) == [0, 1, 2] and {r.config.budget.value for r in inits} == {0}
    runs, waiting = sweep.ready(tmp_path)
    assert waiting == 2 and len(runs) == 6  # both budgets wait for the tuning at budget 2

    # validation says 4; the test numbers written beside it say 16: the selection must follow validation
    for run, val, test in zip(tuning, (60.0, 70.0, 65.0), (50.0, 55.0, 90.0), strict=True):
        folder = tmp_path / "tuned" / run.run_id
        folder.mkdir(parents=True)
        write_json({"status": "done"}, folder / SUMMARY)
        write_json({"val": {"knn@20": val}, "knn": {"top1": {"20": test}}, "linear": {"top1": test}}, folder / EVAL)
    runs, waiting = sweep.ready(tmp_path)
    headline = [r for r in runs if r.role == "headline"]
    assert waiting == 0 and len(headline) == 6
    assert {r.config.optim.lr_factor for r in headline} == {4}  # carried to budget 4 as well
    expected = [(b, s) for b in (2, 4) for s in (0, 1, 2)]
    assert sorted((r.config.budget.value, r.config.seed) for r in headline) == expected
    assert all(r.config.eval.scope == "full" for r in headline)


def test_a_diverged_tuning_run_is_never_selected(tmp_path):
    sweep = tuned_sweep(tmp_path)
    tuning = [r for r in sweep.runs if r.role == "tuning"]
    for run, status in zip(tuning, ("done", "done", "failed"), strict=True):
        folder = tmp_path / "tuned" / run.run_id
        folder.mkdir(parents=True)
        write_json({"status": status}, folder / SUMMARY)
        if status == "done":
            write_json({"val": {"knn@20": 50.0 + run.config.optim.lr_factor}}, folder / EVAL)
    headline = [r for r in sweep.ready(tmp_path)[0] if r.role == "headline"]
    assert {r.config.optim.lr_factor for r in headline} == {4}


def test_a_tuning_run_is_scored_on_validation_without_reading_test(tmp_path, tiny, monkeypatch):
    cfg = tiny(**{"eval.scope": "val", "eval.val_images": 200})
    train(cfg, tmp_path)
    real = evals_run.load_split

    def no_test(data, split):
        assert split != "test", "a tuning run's evaluation read the test split"
        return real(data, split)

    monkeypatch.setattr(evals_run, "load_split", no_test)
    record = evals_run.evaluate_run(tmp_path)
    assert set(record) >= {"val", "moved"} and not {"knn", "linear", "lowshot"} & set(record)
    assert record["val"]["n_fit"] + record["val"]["n_val"] == 200 and 0 <= record["val"]["knn@20"] <= 100


def test_the_validation_images_are_the_same_stratified_draw_for_every_run():
    y = np.repeat(np.arange(10), 100)
    a, b = evals_run.val_indices(y, 300), evals_run.val_indices(y, 300)
    assert np.array_equal(a, b) and len(a) == 300
    assert np.bincount(y[a]).tolist() == [30] * 10
    assert len(evals_run.val_indices(y, None)) == 1000


# --- one probe for every method -------------------------------------------------------------


@pytest.mark.parametrize("method", ["ijepa", "mae"])
def test_the_headline_probe_reads_the_same_views_for_every_method(tmp_path, tiny, method):
    """I-JEPA has no [cls], MAE has one: both headline probes choose among pooled patch tokens only;
    MAE's [cls] probe is reported apart (linear_cls)."""
    train(tiny(method), tmp_path)
    record = evals_run.evaluate_run(tmp_path)
    assert {row["view"] for row in record["linear"]["grid"]} == {"last_avg", "last4_avg"}
    assert record["knn"]["view"] == "last_avg"
    for draw in record["lowshot"]["25%"]["draws"]:
        assert draw["best"]["view"] in ("last_avg", "last4_avg")
    if method == "mae":
        assert {row["view"] for row in record["linear_cls"]["grid"]} == {"last_cls", "last4_cls"}
    else:
        assert "linear_cls" not in record


# --- gains over the init, noise and ties ----------------------------------------------------

# (method, budget, seed) -> linear top-1; budget 0 is the method's init
LINEAR = {
    ("ijepa", 0, 0): 70.0,
    ("ijepa", 0, 1): 71.0,
    ("ijepa", 0, 2): 72.0,
    ("ijepa", 1e12, 0): 75.0,  # gains 5, 6, 7: mean 6, std 1 -> not within noise
    ("ijepa", 1e12, 1): 77.0,
    ("ijepa", 1e12, 2): 79.0,
    ("mae", 0, 0): 76.0,
    ("mae", 0, 1): 76.0,
    ("mae", 0, 2): 76.0,
    ("mae", 1e12, 0): 76.5,  # gains 0.5, -0.5, 1.5: mean 0.5, std 1 -> within noise
    ("mae", 1e12, 1): 75.5,
    ("mae", 1e12, 2): 77.5,
    ("data2vec", 0, 0): 60.0,
    ("data2vec", 0, 1): 60.0,
    ("data2vec", 0, 2): 60.0,
    ("data2vec", 1e12, 0): 61.0,
    ("data2vec", 1e12, 1): 61.2,
    ("data2vec", 1e12, 2): 60.8,
}
MOVED = {"ijepa": 0.2, "mae": 0.01, "data2vec": 0.3}


def write_run(sweep_dir, method, budget, seed, linear):
    cfg = tiny_config(method, **{"budget.kind": "flops", "budget.value": budget, "seed": seed})
    run_dir = sweep_dir / f"{method}-{config_hash(cfg)}"
    run_dir.mkdir(parents=True)
    write_config(cfg, run_dir / "config.yaml")
    compute = {"steps": 10, "flops": budget, "device_hours": budget / 1e15, "images_seen": 160, "epochs": 0.3}
    write_json({"status": "done", "compute": compute | {"budget_used": 1.0}}, run_dir / SUMMARY)
    record = {
        "encoder": "student",
        "val": {"knn@20": linear - 10},
        "knn": {"top1": {"20": linear - 5}, "temperature": 0.07},
        "linear": {"top1": linear, "best": {"view": "last_avg"}},
        "moved": 0.0 if budget == 0 else MOVED[method],
    }
    write_json(record, run_dir / EVAL)


@pytest.fixture
def study(tmp_path):
    sweep_dir = tmp_path / "runs" / "study"
    for (method, budget, seed), linear in LINEAR.items():
        write_run(sweep_dir, method, budget, seed, linear)
    return collate(sweep_dir)


def row(summary, method, budget):
    return summary[(summary["method"] == method) & (summary["budget"] == budget)].iloc[0]


def test_gains_are_paired_with_the_init_of_the_same_seed(study):
    runs = study[(study["method"] == "ijepa") & (study["role"] == "headline")].sort_values("seed")
    assert runs["gain_linear"].tolist() == [5.0, 6.0, 7.0]
    assert study.loc[study["role"] == "init", "gain_linear"].isna().all()
    summary = summarize(study)
    ijepa, mae = row(summary, "ijepa", 1e12), row(summary, "mae", 1e12)
    assert ijepa["gain_linear"] == pytest.approx(6.0) and ijepa["gain_linear_std"] == pytest.approx(1.0)
    assert ijepa["gain_linear_noise"] == False  # noqa: E712 (a numpy bool)
    assert mae["gain_linear"] == pytest.approx(0.5) and mae["gain_linear_std"] == pytest.approx(1.0)
    assert mae["gain_linear_noise"] == True  # noqa: E712
    assert mae["barely_moved"] == True and ijepa["barely_moved"] == False  # noqa: E712
    assert row(summary, "ijepa", 0)["linear"] == pytest.approx(71.0)  # the init is a configuration too


def test_rankings_mark_neighbours_a_welch_test_does_not_separate(study):
    summary = summarize(study)
    ijepa, mae, d2v = row(summary, "ijepa", 1e12), row(summary, "mae", 1e12), row(summary, "data2vec", 1e12)
    assert (ijepa["rank"], mae["rank"], d2v["rank"]) == (1, 2, 3)
    # ijepa (75, 77, 79) against mae (76.5, 75.5, 77.5): Welch's t = 0.5 / sqrt(4/3 + 1/3), p = 0.71
    t = (77.0 - 76.5) / math.sqrt(4 / 3 + 1 / 3)
    dof = (4 / 3 + 1 / 3) ** 2 / ((4 / 3) ** 2 / 2 + (1 / 3) ** 2 / 2)
    assert ijepa["p_next"] == pytest.approx(2 * stats.t.sf(t, dof)) and ijepa["tied_next"] is True
    assert mae["p_next"] < 0.05 and mae["tied_next"] is False
    table = compute_table(summary, "linear")
    line = table[table["budget (flops)"] == 1e12].iloc[0]
    assert line["ranking"] == "ijepa [student] = mae [student] > data2vec [student]"
    assert line["ijepa [student]"] == "77.00 ± 2.00 (+6.00 ± 1.00)"
    assert line["mae [student]"] == "76.50 ± 1.00 (+0.50 ± 1.00, within noise) barely moved"
    assert table[table["budget (flops)"] == 0].iloc[0]["ijepa [student]"] == "71.00 ± 1.00"


def test_welch_p_matches_scipy_and_needs_two_values_a_side():
    a, b = [1.0, 2.0, 4.0], [3.0, 5.0, 6.0, 9.0]
    assert welch_p(a, b) == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert math.isnan(welch_p([1.0], b))


def test_a_point_repeated_by_several_sub_grids_is_tuned_and_run_once(tmp_path):
    tuned_sweep(tmp_path)
    spec = yaml.safe_load((tmp_path / "tuned.yaml").read_text())
    # the same configuration twice: once by default, once by naming the base's value (masks.yaml does this)
    spec["grid"] = [{"method": ["ijepa"]}, {"method": ["ijepa"], "ijepa.mask.num_targets": [2]}]
    (tmp_path / "tuned.yaml").write_text(yaml.safe_dump(spec))
    sweep = load_sweep(tmp_path / "tuned.yaml")
    assert len([r for r in sweep.runs if r.role == "tuning"]) == 3
    for run in [r for r in sweep.runs if r.role == "tuning"]:
        folder = tmp_path / "tuned" / run.run_id
        folder.mkdir(parents=True)
        write_json({"status": "done"}, folder / SUMMARY)
        write_json({"val": {"knn@20": 50.0}}, folder / EVAL)
    runs, _ = sweep.ready(tmp_path)
    assert len(runs) == len({r.run_id for r in runs}) == 3 + 3 + 6  # tuning, init, headline at 2 budgets


def test_a_tuning_run_whose_eval_json_holds_no_score_is_damaged(tmp_path):
    from bench.errors import DamagedFile
    from bench.launch.sweep import tuning_score
    from bench.rundir import EVAL, write_json

    assert tuning_score(tmp_path) is None  # not scored yet
    write_json({"val": {"knn@20": 61.5}}, tmp_path / EVAL)
    assert tuning_score(tmp_path) == 61.5
    for val in ([61.5], {"knn@20": "high"}, {"knn@20": True}):
        write_json({"val": val}, tmp_path / EVAL)
        with pytest.raises(DamagedFile, match="no validation score"):
            tuning_score(tmp_path)
