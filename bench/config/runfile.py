"""A run's config as its run folder holds it: `config.yaml` (written, read) and the hashes of it —
`config_hash`, the run id's, and `training_hash`, everything but the eval section.

What is written and hashed is the shared fields plus the run's own method section: adding a method,
or a section, never changes an existing run's id.
"""

import hashlib
import json
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.config.parse import from_dict
from bench.config.schema import SHARED, RunConfig
from bench.config.yamlio import load_yaml
from bench.files import write_text


def to_dict(cfg: RunConfig) -> dict:
    """Plain nested dict (tuples as lists) that YAML/JSON can write and from_dict can read;
    the shared fields and the run's own method section only, whatever sections RunConfig has, so a
    method added later never changes another's run id; fields ADDED_LATER only when set."""
    out = _plain(cfg)
    return {k: v for k, v in out.items() if k in SHARED or k == cfg.method}


def _plain(node: Any) -> Any:
    if isinstance(node, list | tuple):
        return [_plain(v) for v in node]
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if not is_dataclass(node):
        return node
    out = {}
    for f in fields(node):
        value = getattr(node, f.name)
        if f.metadata.get("written") == "when_set" and value == (
            f.default if f.default_factory is MISSING else f.default_factory()
        ):
            continue
        out[f.name] = _plain(value)
    return out


def config_hash(cfg: RunConfig) -> str:
    return hashlib.sha1(json.dumps(to_dict(cfg), sort_keys=True).encode()).hexdigest()[:10]


def training_hash(cfg: RunConfig) -> str:
    """The hash of everything but the `eval` section: what a checkpoint was trained with (recorded in
    summary.json). A folder `bench sweep` named by its run id must still hash to that id, eval section
    included; in a folder of a name of one's own (`bench train --out`, or a copy of a sweep's run),
    editing the eval section (eval.encoder: teacher, another probe) and evaluating again is fine."""
    trained = {k: v for k, v in to_dict(cfg).items() if k != "eval"}
    return hashlib.sha1(json.dumps(trained, sort_keys=True).encode()).hexdigest()[:10]


def write_config(cfg: RunConfig, path: Path) -> None:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's: ten times faster for big sweeps
    write_text(path, yaml.dump(to_dict(cfg), Dumper=dumper, sort_keys=False))


def read_config(path: Path) -> RunConfig:
    data = load_yaml(path)
    data.setdefault("version", 1)  # configs written before versions were recorded
    return from_dict(RunConfig, data)
