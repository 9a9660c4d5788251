"""The reference rows: raw pixels and randomly initialised encoders through the same protocol as
a run, so that a table says what training added.

    refs = reference_rows([run.config for run in runs], root / "references")   # bench collate, report

Each row is computed once per distinct encoder (a hash of its initial weights), dataset and
evaluation settings, and cached under the root's `references/` across sweeps.
"""

import hashlib
import json
import logging
from dataclasses import asdict, replace
from pathlib import Path

import torch

from bench.config.schema import RunConfig
from bench.data.datasets import load_split
from bench.errors import DamagedFile
from bench.evals.run import evaluate_features, extract_splits, initial_encoder
from bench.rundir import EVAL, read_json, write_json

log = logging.getLogger(__name__)


def weights_digest(net: torch.nn.Module) -> str:
    """A hash of a module's parameters and buffers (names, shapes, dtypes, values)."""
    h = hashlib.sha1()
    for name, tensor in sorted(net.state_dict().items()):
        h.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def reference(name: str, cfg: RunConfig, cache_dir: Path) -> dict:
    """A reference row through the same protocol: `pixels` (normalised raw pixels) or `random` (the
    encoder the run is evaluated on, as its method builds it before any training, seed 0). Methods
    initialise differently (MAE: Xavier; I-JEPA: truncated normal, std 0.02, without residual rescale;
    data2vec 2.0: normal, std 0.02, [cls] from N(0, 1); data2vec v1: truncated normal with the residual
    rescale) and some add a [cls] token, so each method has its own random row.

    Cached in `cache_dir` under what decides the row, across sweeps: the dataset and the evaluation
    settings, and for `random` a hash of the encoder's initial weights — not its method's or sweep's
    name, so two configs whose encoders start from the same weights share one entry, and a method
    setting that leaves the encoder alone (a predictor's depth, a learning rate) reuses it. A damaged
    entry is computed again, saying so."""
    # the scored encoder is named by its weights; the scope of the run it stands beside does not apply
    protocol = {"data": asdict(cfg.data), "eval": asdict(replace(cfg.eval, encoder="auto", scope="full"))}
    encoder = None
    if name == "random":
        channels = load_split(cfg.data, "train").channels
        encoder = initial_encoder(replace(cfg, seed=0), channels)  # at init: teacher = student
        protocol["weights"] = weights_digest(encoder)
    digest = hashlib.sha1(json.dumps(protocol, sort_keys=True).encode()).hexdigest()[:10]
    folder = Path(cache_dir) / f"{name}-{cfg.data.name}-{digest}"
    try:
        cached = read_json(folder / EVAL)
    except DamagedFile:
        log.warning("reference cache %s is damaged (not JSON): computing it again", folder / EVAL)
        cached = None
    if cached is not None:
        return cached
    label = f"{name}-{cfg.backbone}-{cfg.method}" if name == "random" else name
    make_encoder = (lambda channels: encoder) if encoder is not None else None
    train, test, split = extract_splits(make_encoder, cfg, folder, {"reference": name})
    record = evaluate_features(train, test, cfg, split) | {"dataset": cfg.data.name, "reference": label}
    if "weights" in protocol:
        record["weights"] = protocol["weights"]
    write_json(record, folder / EVAL)
    return record


def reference_rows(configs: list[RunConfig], cache_dir: Path) -> dict[str, dict]:
    """The reference rows of a sweep whose runs have `configs`: raw pixels, and each evaluated encoder
    as its method initialises it unless the sweep has its own init runs (budget 0, one per seed:
    random_init). Computed for the runs that are scored on test (a tuning run sees no test split),
    once per distinct encoder, cached in `cache_dir` (`reference`)."""
    scored = [c for c in configs if c.eval.scope == "full"] or configs
    refs = {"pixels": reference("pixels", scored[0], cache_dir)}
    with_init = {(c.backbone, c.method) for c in scored if c.budget.value == 0}
    kinds = {(c.backbone, c.method): c for c in scored if (c.backbone, c.method) not in with_init}
    backbones = {backbone for backbone, _ in kinds}
    for (backbone, method), cfg in sorted(kinds.items()):
        where = f"{method}, {backbone}" if len(backbones) > 1 else method
        name = "random" if len(kinds) == 1 else f"random ({where})"
        refs[name] = reference("random", cfg, cache_dir)
    return refs
