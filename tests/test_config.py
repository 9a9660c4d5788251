import csv
import math
from pathlib import Path

import pytest

from bench.config import RunConfig, build_config, check_key, config_hash, parse_overrides, read_config, write_config
from bench.errors import BenchError
from bench.sweep import load_sweep

from .conftest import needs_fashion_mnist


def test_defaults_and_overrides():
    cfg = build_config({"optim": {"lr": 5e-4}}, ["ijepa.mask.num_targets=2", "budget.value=3e12", "budget.kind=flops"])
    assert cfg.optim.lr == 5e-4
    assert cfg.ijepa.mask.num_targets == 2
    assert cfg.budget.value == 3e12 and isinstance(cfg.budget.value, float)
    assert cfg.ijepa.mask.target_scale == (0.15, 0.2)  # untouched default


def test_dotted_and_nested_keys_mix():
    cfg = build_config({"ijepa.mask": {"mode": "unbiased"}, "ijepa": {"loss": "l2"}})
    assert cfg.ijepa.mask.mode == "unbiased" and cfg.ijepa.loss == "l2"


@pytest.mark.parametrize(
    "data, message",
    [
        ({"optim": {"lrr": 1}}, "unknown key 'optim.lrr'; valid keys: batch_size, lr"),
        ({"nope": 1}, "unknown key 'nope'; valid keys: version, method, recipe, backbone"),
        ({"optim": {"batch_size": 1.5}}, "optim.batch_size: expected an integer"),
        ({"ijepa": {"mask": {"target_scale": [0.1]}}}, "expected 2 values"),
        ({"budget": {"value": -3}}, "budget.value must be >= 0"),
        ({"recipe": "epochs"}, "recipe 'epochs' is not one of budget, paper"),
        ({"optim": {"lr_factor": 0}}, "optim.lr_factor must be > 0"),
        ({"eval": {"linear_views": ["last_cls"]}}, "eval view 'last_cls': headline views are last_avg, last4_avg"),
        ({"eval": {"scope": "test"}}, "eval.scope 'test' is not one of full, val"),
        ({"budget": {"kind": "hours"}}, "budget.kind 'hours' is not one of"),
        ({"backbone": "vit_nope"}, "unknown backbone 'vit_nope'; valid: "),
        ({"method": "simclr"}, "unknown method 'simclr'; valid: data2vec, data2vec_v1, ijepa, mae"),
        ({"seed": float("nan")}, "seed: expected a finite number"),
        ({"optim": {"batch_size": float("inf")}}, "expected a finite number"),
        ({"log_every": 0}, "log_every must be >= 1"),
        ({"eval": {"knn_k": []}}, "eval.knn_k must list"),
        ({"eval": {"temperature": 0}}, "eval.temperature must be > 0"),
    ],
)
def test_bad_config_says_what_is_wrong(data, message):
    with pytest.raises(BenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_config(data)


def test_override_syntax_errors():
    with pytest.raises(BenchError, match="key=value"):
        parse_overrides(["optim.lr"])


def test_check_key():
    check_key("ijepa.mask.num_targets")
    with pytest.raises(BenchError, match="unknown key 'ijepa.mask.num_target'"):
        check_key("ijepa.mask.num_target")
    with pytest.raises(BenchError, match="has no sub-keys"):
        check_key("seed.value")


def test_roundtrip_and_hash(tmp_path):
    cfg = build_config({"ijepa.mask.mode": "unbiased", "budget": {"kind": "epochs", "value": 2}})
    write_config(cfg, tmp_path / "c.yaml")
    again = read_config(tmp_path / "c.yaml")
    assert again == cfg
    assert config_hash(again) == config_hash(cfg)
    assert config_hash(RunConfig()) != config_hash(cfg)


@needs_fashion_mnist
@pytest.mark.parametrize("name", ["demo", "compute", "recipes"])
def test_published_run_ids_stay_stable(name):
    """`bench sweep sweeps/NAME.yaml` must find the runs behind results/NAME.csv: a new config field
    that changed every run id would orphan them (new fields use ADDED_LATER), and a change that must
    change them (a new CONFIG_VERSION) must come with the tables made again (older tables move to
    results/v2/, which says which version made them). A tuned sweep's headline runs follow from its
    tuning runs' validation scores, read here from the published table."""
    root = Path(__file__).resolve().parents[1]
    rows = list(csv.DictReader((root / f"results/{name}.csv").open()))
    published = {r["run"] for r in rows if r["status"] != "reference"}
    scores = {
        r["run"]: float(r["val_knn@20"]) if r["status"] == "done" else -math.inf
        for r in rows
        if r.get("role") == "tuning"
    }
    runs, waiting = load_sweep(root / f"sweeps/{name}.yaml").ready(root, score=scores.get)
    assert waiting == 0
    assert {run.run_id for run in runs} == published


def test_eval_subsets_are_checked_and_written_only_when_set(tmp_path):
    """eval.train_images / test_images (the demo's smoke evaluation) came after run ids were published:
    unset, they leave config.yaml and the run id as they were."""
    assert config_hash(build_config({"eval": {"train_images": None}})) == config_hash(RunConfig())
    cfg = build_config({"eval": {"train_images": 5000, "test_images": 2000}})
    assert config_hash(cfg) != config_hash(RunConfig())
    write_config(cfg, tmp_path / "c.yaml")
    assert read_config(tmp_path / "c.yaml").eval.test_images == 2000
    with pytest.raises(BenchError, match="eval.test_images must be >= 100"):
        build_config({"eval": {"test_images": 10}})
