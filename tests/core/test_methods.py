"""The method contract (core/method.py) and its registry: every registered method agrees with the
config, the harness and the tests; a method or section added later changes no existing run id."""

import json
import typing
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path

import pytest
import torch

from bench.config.parse import config_data, from_dict
from bench.config.runfile import config_hash, to_dict, write_config
from bench.config.schema import SHARED, OptimConfig, RunConfig, run_config_class
from bench.train.methods import augmentation, build_method
from core.errors import BenchError
from core.method import METHODS, Augmentation, InputSampler, Method, MethodSpec, PaperRun
from core.ranges import COUNT
from core.registry import Registry

from ..conftest import TINY_METHODS, tiny_config

REPLAY = json.loads((Path(__file__).parents[1] / "fixtures" / "replay.json").read_text())


def sections(cls: type) -> list[str]:
    return [f.name for f in fields(cls) if f.name not in SHARED]


def test_registry_config_sections_recipes_and_tests_agree():
    """One list of methods: the registry's, RunConfig's method sections (in registration order, before
    `eval`), and TINY_METHODS (tests/conftest.py), each with a section of its spec's type."""
    names = [name for name, _ in METHODS.items()]
    assert sections(RunConfig) == names, "RunConfig's method sections are not the registered methods"
    assert [f.name for f in fields(RunConfig)][-1] == "eval"
    assert sorted(TINY_METHODS) == sorted(names), "tests/conftest.py TINY_METHODS must list every registered method"
    hints = typing.get_type_hints(RunConfig)
    optim_keys = {f.name for f in fields(OptimConfig)}
    for name, spec in METHODS.items():
        assert spec.name == name
        assert is_dataclass(spec.section) and hints[name] is spec.section
        assert isinstance(spec.default(), spec.section)
        assert set(spec.recipe) <= optim_keys, f"{name}'s recipe sets keys OptimConfig does not have"
        assert isinstance(spec.paper_run, PaperRun) and spec.paper_run.updates > 0 and spec.paper_run.batch > 0
        for key in spec.ranges:  # every range names a field of the section
            node: typing.Any = spec.section
            for part in key.split("."):
                node = typing.get_type_hints(node)[part]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_each_method_keeps_its_contract(method):
    """Built on the meta device from its tiny config: a Method whose sampler declares the batch dimension
    of every input it draws, whose evaluated encoder exists, with [cls] as its spec says."""
    cfg = tiny_config(method)
    spec = METHODS.get(method)
    with torch.device("meta"):
        model = build_method(cfg, in_chans=3)
    assert isinstance(model, Method)
    encoders = model.encoders()
    assert model.evaluated in encoders and "student" in encoders
    assert (encoders["student"].cls_token is not None) == spec.cls_token
    assert isinstance(augmentation(cfg), Augmentation)
    sampler = model.input_sampler()
    if sampler is not None:
        assert isinstance(sampler, InputSampler)
        inputs = sampler(4, 0)
        assert set(inputs) == set(sampler.batch_dims), "batch_dims must name every input the sampler draws"


def test_a_sampler_without_batch_dims_cannot_be_defined():
    with pytest.raises(TypeError, match="must set batch_dims"):

        class Forgetful(InputSampler):  # noqa: F841
            def __call__(self, batch_size, step):
                return {}


def test_a_process_share_is_its_cut_of_the_global_batch():
    class Rows(InputSampler):
        batch_dims = {"a": 0, "b": 1}

        def __call__(self, batch_size, step):
            return {"a": torch.arange(batch_size), "b": torch.arange(2 * batch_size).view(2, batch_size)}

    whole, share = Rows()(8, 0), Rows().process_share(8, 0, 1, 2)
    assert torch.equal(share["a"], whole["a"][4:]) and torch.equal(share["b"], whole["b"][:, 4:])


@dataclass
class ThrowawayConfig:
    width: int = 7
    crop_scale: tuple[float, float] = (0.5, 1.0)


THROWAWAY = MethodSpec(
    name="throwaway",
    build=lambda encoder, section, in_chans, seed: None,
    section=ThrowawayConfig,
    augmentation=lambda c: Augmentation(crop_scale=c.crop_scale),
    paper_run=PaperRun(1000, 256, "none"),
    recipe={"lr": 1.0},
    ranges={"width": COUNT},
)


def test_a_method_added_later_changes_no_run_id(tmp_path):
    """A new method's section is in RunConfig but never in another method's config.yaml or hash: the
    default configs and tiny runs hash as tests/fixtures/replay.json recorded them before any change
    (no dataset needed), and a config.yaml written with it present is byte-identical."""
    with METHODS.registered("throwaway", THROWAWAY):
        extended = run_config_class()
        assert sections(extended) == [*sections(RunConfig), "throwaway"]
        assert config_hash(extended()) == REPLAY["default_hash"]
        for method in TINY_METHODS:
            assert config_hash(extended(method=method)) == REPLAY[f"default_{method}"], method
            tiny = tiny_config(method, log_every=1, **{"budget.value": 5})
            assert config_hash(tiny) == REPLAY["methods"][method]["hash"], method
            with_section = from_dict(extended, to_dict(tiny))
            assert with_section.throwaway == ThrowawayConfig()
            assert config_hash(with_section) == REPLAY["methods"][method]["hash"], method
            write_config(tiny, tmp_path / "before.yaml")
            write_config(with_section, tmp_path / "after.yaml")
            assert (tmp_path / "after.yaml").read_bytes() == (tmp_path / "before.yaml").read_bytes()
        own = from_dict(extended, config_data({"method": "throwaway"}))
        assert own.optim.lr == 1.0 and "throwaway" in to_dict(own) and "ijepa" not in to_dict(own)
    assert "throwaway" not in METHODS and sections(run_config_class()) == sections(RunConfig)


def test_the_default_configs_hash_as_before():
    assert config_hash(RunConfig()) == REPLAY["default_hash"]
    for method in TINY_METHODS:
        assert config_hash(RunConfig(method=method)) == REPLAY[f"default_{method}"]


def test_a_method_brings_its_recipe():
    """Selecting a method starts `optim` from its recipe; the config's own keys win over it."""
    assert tiny_config("mae").optim.betas == (0.9, 0.95) and tiny_config("ijepa").optim.betas == (0.9, 0.999)
    assert tiny_config("mae", **{"optim.betas": "[0.8,0.9]"}).optim.betas == (0.8, 0.9)


def test_registries_add_and_remove_for_a_test():
    things: Registry[int] = Registry("thing")
    things.add("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        things.add("a", 2)
    with pytest.raises(RuntimeError), things.registered("b", 2):
        assert things.get("b") == 2 and things.items() == [("a", 1), ("b", 2)]
        raise RuntimeError("a failing test")
    assert "b" not in things  # removed even when the block raised
    assert things.unregister("a") == 1 and things.names() == []
    with pytest.raises(BenchError, match="unknown thing 'a'"):
        things.unregister("a")


def test_a_replaced_entry_comes_back_after_the_block():
    things: Registry[int] = Registry("thing")
    things.add("a", 1)
    with pytest.raises(RuntimeError), things.replaced("a", 2):
        assert things.get("a") == 2
        raise RuntimeError("a failing test")
    assert things.get("a") == 1
