"""A RunConfig (or any config dataclass) from YAML mappings and dotted overrides: every key is
checked against the dataclasses — an unknown key fails with the valid keys listed, a value of the
wrong type fails with the expected type. Dotted (`optim.lr: 5e-4`) and nested keys mix.
"""

import dataclasses
import json
import math
import types
import typing
from dataclasses import asdict, fields, is_dataclass
from typing import Any

import yaml

from bench.config.schema import RunConfig
from bench.config.yamlio import describe, parse_yaml
from bench.errors import BenchError
from core.method import METHODS


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a YAML value to the annotated type, or raise a BenchError naming the key."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except BenchError as e:
                errors.append(str(e))
        raise BenchError(errors[0] if errors else f"{key}: cannot be {value!r}")
    if is_dataclass(tp):
        if not isinstance(value, dict):
            raise BenchError(f"{key}: expected a mapping, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            value = [value] if args[-1] is Ellipsis else value
        if not isinstance(value, list | tuple):
            raise BenchError(f"{key}: expected a list, got {value!r}")
        if args[-1] is Ellipsis:
            return tuple(_coerce(v, args[0], key) for v in value)
        if len(value) != len(args):
            raise BenchError(f"{key}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, key) for v, a in zip(value, args, strict=True))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise BenchError(f"{key}: expected true or false, got {value!r}")
    if tp in (int, float):
        if isinstance(value, bool):
            raise BenchError(f"{key}: expected {tp.__name__}, got {value!r}")
        if isinstance(value, str):  # YAML reads "3e13" as a string
            try:
                value = float(value)
            except ValueError:
                raise BenchError(f"{key}: expected {tp.__name__}, got {value!r}") from None
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise BenchError(f"{key}: expected a finite number, got {value!r}")
        if tp is int:
            if int(value) != value:
                raise BenchError(f"{key}: expected an integer, got {value!r}")
            return int(value)
        return float(value)
    if tp is dict:
        if not isinstance(value, dict):
            raise BenchError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is str:
        if not isinstance(value, str):
            raise BenchError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"{key}: unsupported annotation {_type_name(tp)}")


def from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    """Build dataclass `cls` from a nested dict; unknown keys raise with the valid ones listed."""
    hints = typing.get_type_hints(cls)
    by_name = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in by_name:
            raise BenchError(f"unknown key '{prefix}{key}'; valid keys: {', '.join(by_name)}")
        default = by_name[key].default_factory
        if is_dataclass(hints[key]) and isinstance(value, dict) and default is not dataclasses.MISSING:
            value = merge(json.loads(json.dumps(asdict(default()))), value)  # a partial section keeps its defaults
        kwargs[key] = _coerce(value, hints[key], f"{prefix}{key}")
    return cls(**kwargs)


def nest(flat: dict) -> dict:
    """{'a.b': 1, 'c': {'d': 2}} → {'a': {'b': 1}, 'c': {'d': 2}} (dotted and nested keys mix)."""
    out: dict = {}
    for key, value in flat.items():
        if isinstance(value, dict):
            value = nest(value)
        parts = str(key).split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise BenchError(f"key {key!r} sets inside a value that is not a mapping")
        if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
            node[parts[-1]] = merge(node[parts[-1]], value)
        else:
            node[parts[-1]] = value
    return out


def merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_overrides(items: list[str]) -> dict:
    """['optim.lr=5e-4', 'ijepa.mask.num_targets=2'] → a nested dict, values parsed as YAML."""
    flat = {}
    for item in items:
        if "=" not in item:
            raise BenchError(f"override {item!r} must look like key=value (e.g. optim.lr=5e-4)")
        key, raw = item.split("=", 1)
        try:
            flat[key.strip()] = parse_yaml(raw)
        except yaml.YAMLError as e:
            raise BenchError(f"override {item!r}: cannot parse value ({describe(e)})") from None
    return nest(flat)


def check_key(key: str, cls: type = RunConfig) -> None:
    """Raise if the dotted `key` does not name a field of the config (used by sweep axes)."""
    node: Any = cls
    seen = ""
    for part in key.split("."):
        if not (isinstance(node, type) and is_dataclass(node)):
            raise BenchError(f"key {key!r}: {seen.rstrip('.')} has no sub-keys")
        hints = typing.get_type_hints(node)
        if part not in hints:
            raise BenchError(f"unknown key '{seen}{part}'; valid keys: {', '.join(f.name for f in fields(node))}")
        node = hints[part]
        seen += part + "."


def config_data(data: dict | None = None, overrides: list[str] | None = None) -> dict:
    """The nested mapping a RunConfig is built from: the method's optimizer recipe (its MethodSpec's)
    under `optim`, then `data` (dotted or nested keys), then the dotted `overrides` on top."""
    merged = merge(nest(data or {}), parse_overrides(overrides or []))
    method = merged.get("method", RunConfig.method)
    # not a string, or unknown: from_dict or validate says so
    recipe = METHODS.get(method).recipe if isinstance(method, str) and method in METHODS else {}
    return merge({"optim": json.loads(json.dumps(recipe))}, merged)  # the method's recipe, under the user's keys
