import csv
import math
import time
import typing
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest
import yaml

from bench.config.parse import check_key, parse_overrides
from bench.config.ranges import MAX_STEPS, SEED_MAX, run_ranges
from bench.config.runfile import config_hash, read_config, write_config
from bench.config.schema import RunConfig
from bench.config.validate import build_config
from bench.config.yamlio import MAX_BYTES, MAX_DEPTH, Loader, PureLoader, describe, load_yaml, parse_yaml, read_yaml
from bench.errors import BenchError
from bench.launch.slurm import SLURM_RANGES, SlurmConfig
from bench.launch.sweep import load_sweep

from ..conftest import needs_fashion_mnist


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
        ({"method": "simclr"}, "unknown method 'simclr'; valid: data2vec, data2vec_v1, ijepa, lejepa, mae"),
        ({"seed": float("nan")}, "seed: expected a finite number"),
        ({"optim": {"batch_size": float("inf")}}, "expected a finite number"),
        ({"log_every": 0}, "log_every must be >= 1"),
        ({"eval": {"knn_k": []}}, "eval.knn_k must list"),
        ({"eval": {"temperature": 0}}, "eval.temperature must be > 0"),
        # every number in its range (bench/config/ranges.py run_ranges), one line naming the key and the range
        ({"optim": {"lr": -1e-3}}, "optim.lr must be > 0, got -0.001"),
        ({"optim": {"final_lr": -1}}, "optim.final_lr must be >= 0"),
        ({"optim": {"weight_decay": -0.1}}, "optim.weight_decay must be >= 0"),
        ({"optim": {"betas": [0.9, 1.0]}}, "optim.betas must be in [0, 1), got [0.9, 1.0]"),
        ({"optim": {"clip_grad": 0}}, "optim.clip_grad must be > 0 (or null: no clipping)"),
        ({"data": {"num_workers": -1}}, "data.num_workers must be in [0, 256], got -1"),
        ({"data": {"image_size": -4}}, "data.image_size must be in [1, 1024]"),
        ({"data": {"image_size": 30}}, "data.image_size=30 does not suit backbone vit_tiny_patch4"),
        ({"seed": 2**70}, f"seed must be in [0, {SEED_MAX}]"),
        ({"seed": -1}, f"seed must be in [0, {SEED_MAX}]"),
        ({"ijepa": {"ema": [0.9, 1.5]}}, "ijepa.ema must be in [0, 1]"),
        ({"ijepa": {"mask": {"target_aspect": [0, 0]}}}, "ijepa.mask.target_aspect must be in (0, 100]"),
        ({"ijepa": {"predictor_depth": 10**9}}, "ijepa.predictor_depth must be in [1, 64]"),
        ({"method": "mae", "mae": {"decoder_heads": 0}}, "mae.decoder_heads must be in [1, 1024]"),
        ({"method": "data2vec", "data2vec": {"decoder_groups": 0}}, "data2vec.decoder_groups must be in [1, 8192]"),
        ({"method": "data2vec", "data2vec": {"ema_steps": 0}}, "data2vec.ema_steps must be >= 1"),
        ({"eval": {"batch_size": 0}}, "eval.batch_size must be in [1, 65536]"),
        ({"eval": {"draws": 10**9}}, "eval.draws must be in [1, 100]"),
        ({"eval": {"knn_k": [10, 5000]}}, "eval.knn_k must be in [1, 2048]"),
        # budgets: at most MAX_STEPS steps; FLOP and time budgets bounded in their unit
        ({"budget": {"value": 1e308}}, "budget.value=1e+308 steps is more than the 1e+08 steps a run may take"),
        ({"budget": {"kind": "epochs", "value": 1e6}}, "epochs (468 steps each) is more than the 1e+08 steps"),
        ({"budget": {"kind": "flops", "value": 1e300}}, "flops is more than the 1e+26"),
        ({"budget": {"kind": "device_hours", "value": 1e9}}, "device_hours is more than the 1e+06"),
        ({"optim": {"batch_size": 100_000}}, "optim.batch_size=100000 is larger than fashion-mnist's training split"),
        ({"method": ["ijepa"]}, "method: expected a string"),
    ],
)
def test_bad_config_says_what_is_wrong(data, message):
    with pytest.raises(BenchError) as error:
        build_config(data)
    assert message in str(error.value) and "\n" not in str(error.value)


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
@pytest.mark.parametrize("name", ["demo", "compute", "recipes", "lejepa_lr"])
def test_published_run_ids_stay_stable(name):
    """`bench sweep sweeps/NAME.yaml` must find the runs behind results/NAME.csv: a new config field
    that changed every run id would orphan them (new fields use ADDED_LATER), and a change that must
    change them (a new CONFIG_VERSION) must come with the tables made again (older tables move to
    results/v2/, which says which version made them). A tuned sweep's headline runs follow from its
    tuning runs' validation scores, read here from the published table."""
    root = Path(__file__).resolve().parents[2]
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


def numeric_keys(cls: type, prefix: str = "") -> list[str]:
    """The dotted keys of every number (or tuple of numbers, optional or not) of a config dataclass."""
    keys = []
    for f in fields(cls):
        tp = typing.get_type_hints(cls)[f.name]
        if is_dataclass(tp):
            keys += numeric_keys(tp, f"{prefix}{f.name}.")
            continue
        args = {a for a in typing.get_args(tp) if a is not type(None) and a is not Ellipsis} or {tp}
        if any(a in (int, float) or int in typing.get_args(a) or float in typing.get_args(a) for a in args):
            keys.append(f"{prefix}{f.name}")
    return keys


def test_every_number_of_the_config_has_a_range():
    """A numeric field added without a range would take any value, NaN-free but negative or absurd."""
    assert sorted(set(numeric_keys(RunConfig)) - {"version"}) == sorted(run_ranges())
    assert sorted(numeric_keys(SlurmConfig, "slurm.")) == sorted(SLURM_RANGES)


def test_the_defaults_and_every_method_recipe_are_in_range():
    for method in ("ijepa", "mae", "data2vec", "data2vec_v1"):
        build_config({"method": method, "data2vec_v1": {"top_k": 6}})


def test_a_dataset_is_scanned_once_per_process(monkeypatch):
    """The scan of a dataset runs once per process, however many runs a sweep validates."""
    from bench.data import datasets as data

    calls = []
    monkeypatch.setattr(data, "_scanned", {})
    real = data.SCANS.get("synthetic")
    tiny = {"data": {"name": "synthetic", "image_size": 16}, "backbone": "vit_nano_patch4", "ijepa.mask.min_keep": 0}
    with data.SCANS.replaced("synthetic", lambda cfg: calls.append(cfg) or real(cfg)):
        for seed in range(5):
            build_config(tiny | {"seed": seed})
    assert len(calls) == 1 and data.SCANS.get("synthetic") is real


# --- bounded YAML (bench/config/yamlio.py) ------------------------------------------------------------


def billion_laughs(levels: int = 9) -> str:
    lines = ['lol0: &lol0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"lol{i}: &lol{i} [{', '.join([f'*lol{i - 1}'] * 10)}]")
    return "base:\n" + "\n".join("  " + line for line in lines) + "\n"


@pytest.mark.parametrize("loader", [Loader, PureLoader], ids=["libyaml", "python"])
def test_a_billion_laughs_fails_fast(loader):
    start = time.perf_counter()
    with pytest.raises(yaml.YAMLError) as error:
        parse_yaml(billion_laughs(), loader)
    assert "more than 100,000 values once its aliases are expanded" in describe(error.value)
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize("loader", [Loader, PureLoader], ids=["libyaml", "python"])
@pytest.mark.parametrize(
    "text, message",
    [
        ("a: 1\nb: 2\na: 3\n", "duplicate key 'a' (first at line 1) at line 3"),
        ("x:\n  y: [1]\n  z: 2\n  y: [2]\n", "duplicate key 'y' (first at line 2) at line 4"),
        ("[" * 200 + "]" * 200, "nested deeper than 32 levels"),
        ("- " * 100 + "x\n", "nested deeper than 32 levels"),
        ("a: &a " + "[" * 20 + "]" * 20 + "\nb: " + "[" * 20 + "*a" + "]" * 20, "nested deeper than 32 levels"),
        ("&a [*a]", "an alias refers to the collection that holds it"),
        ("a: *nowhere", "malformed YAML at line 1: found undefined alias"),
        ("a: \x00", "malformed YAML at offset 3: "),  # libyaml: control characters..., Python: special...
    ],
)
def test_yaml_beyond_its_bounds_is_refused_with_the_line(loader, text, message):
    with pytest.raises(yaml.YAMLError) as error:
        parse_yaml(text, loader)
    assert message in describe(error.value)


@pytest.mark.parametrize("loader", [Loader, PureLoader], ids=["libyaml", "python"])
def test_yaml_within_bounds_reads_as_before(loader):
    text = "base: &b {a: 1, c: [1, 2]}\nz:\n  <<: *b\n  a: 5\ndeep: " + "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2)
    data = parse_yaml(text, loader)
    assert data["z"] == {"a": 5, "c": [1, 2]}  # a key of its own overrides a merged one, as YAML means it
    assert parse_yaml("", loader) is None
    for name in ("demo", "compute", "masks", "recipes", "methods", "baselines"):
        path = Path(__file__).resolve().parents[2] / f"sweeps/{name}.yaml"
        assert parse_yaml(path.read_text(), loader) == yaml.safe_load(path.read_text())


@pytest.mark.parametrize(
    "content, message",
    [
        (b"a: caf\xe9\n", "not UTF-8 text (byte 0xe9 at offset 6)"),
        ("a: 1\n".encode("utf-16"), "not UTF-8 text"),
        (b"#" * (MAX_BYTES + 1), "larger than the 1 MiB a YAML file may hold"),
        (b"- 1\n", "expected a mapping at the top level"),
        (b"a: [1\n", "malformed YAML at line 2"),
    ],
)
def test_a_bad_yaml_file_is_one_line_naming_it(tmp_path, content, message):
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    with pytest.raises(BenchError) as error:
        load_yaml(path)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)


def test_what_is_not_a_yaml_file(tmp_path):
    with pytest.raises(BenchError, match="is a folder, not a YAML file"):
        read_yaml(tmp_path, "sweep file")
    with pytest.raises(BenchError, match="does not exist"):
        read_yaml(tmp_path / "nope.yaml")
    with pytest.raises(BenchError, match="is not a regular file"):
        read_yaml(Path("/dev/zero"))


def test_override_values_are_read_within_the_same_bounds():
    with pytest.raises(BenchError, match="duplicate key 'a'"):
        parse_overrides(["optim={a: 1, a: 2}"])
    assert parse_overrides(["optim.betas=[0.9, 0.95]"]) == {"optim": {"betas": [0.9, 0.95]}}


def test_the_step_limit_keeps_derived_seeds_inside_torch():
    """StepTagged seeds (seed x 1,000,003 + step) x 1,000,033 + index: at SEED_MAX, MAX_STEPS and an
    index of ImageNet's size, still a seed torch takes."""
    import torch

    torch.Generator().manual_seed((SEED_MAX * 1_000_003 + MAX_STEPS) * 1_000_033 + 1_281_167)


def test_a_flop_or_time_budget_beyond_max_steps_fails_once_a_step_is_priced():
    from bench.config.schema import BudgetConfig
    from bench.errors import TrainingFailed
    from bench.train.engine import Budget, Spent

    for kind, spent in (("flops", Spent(steps=1, flops=1e9)), ("device_hours", Spent(steps=1, device_seconds=0.01))):
        budget = Budget(BudgetConfig(kind, 1e25 if kind == "flops" else 1e5), 10, spent)
        budget.last_cost = budget.used()
        with pytest.raises(TrainingFailed, match=f"{kind} is about .* steps of this run, more than the 1e\\+08"):
            budget.check_length()
    fits = Budget(BudgetConfig("flops", 1e16), 10, Spent(steps=1, flops=1e9))
    fits.last_cost = 1e9
    fits.check_length()  # 1e7 steps


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


def test_the_health_section_is_written_only_when_set(tmp_path):
    """`health` came after run ids were published: at its defaults config.yaml has no `health` key and
    the run id is the one before it; set, only its set fields are written, and read back."""
    default = build_config({"health": {"every": 100, "images": 512}})
    write_config(default, tmp_path / "d.yaml")
    assert "health" not in (tmp_path / "d.yaml").read_text()
    assert config_hash(default) == config_hash(RunConfig())
    off = build_config({}, ["health.every=0"])
    write_config(off, tmp_path / "off.yaml")
    assert "health:\n  every: 0\n" in (tmp_path / "off.yaml").read_text()
    assert config_hash(off) != config_hash(RunConfig())
    assert read_config(tmp_path / "off.yaml").health.every == 0
    assert read_config(tmp_path / "off.yaml").health.images == 512
