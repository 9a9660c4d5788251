"""Label-free health signals during training: is anything being learned while the loss looks fine?

At step 0 (the initialisation), every `health.every` optimizer steps and at the last step, process 0
measures, on a fixed batch of `health.images` training images (core/health.py has the maths):

- `health/rankme`: RankMe of the evaluated encoder's embeddings (the headline k-NN view, `last_avg`:
  the last block's patch tokens, average-pooled), `health/feature_std` (about 1 spread, 0 collapsed)
  and `health/std` (the raw per-dimension std);
- `health/moved`: ||theta - theta_0|| / ||theta_0|| of the evaluated encoder from its initialisation;
- `health/<name>`: the method's own diagnostics (core/method.py `Method.diagnostics`: `target_std`
  for the EMA methods).

The fixed batch is drawn from the training split, never the test split (the test split is not touched
during training, so the evaluation stays unseen), by a generator seeded from the run's seed alone, and
goes through the evaluation transform (no augmentation): the same images, seen the same way, at every
measurement and in `bench health`'s backfill. No label is read. A measurement runs in eval mode under
no_grad with the global random state forked (torch.random.fork_rng), so a run with health on trains
exactly as one with it off; its time is kept off the budget's clock and it is charged no FLOPs.

The values go into metrics.jsonl: merged into the step's record when the step writes one (always the
last step), else as a record of their own holding the step, its compute and the `health/` keys (no
loss): step 0's, and the `every` steps between `log_every`'s.
"""

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.config.schema import RunConfig
from bench.data.split import Split, take
from bench.evals.features import eval_batches, pooled
from bench.rundir import parse_record
from bench.train.methods import eval_encoder
from core.health import encoder_moved, feature_std, rankme, std
from core.method import Method
from core.seeding import STEPS, derive_seed

HEALTH = "health/"  # a signal's record key: "health/rankme"
# The fixed batch's seed: a key outside every span, so a hashed seed apart from the data order's, the
# masks' and the augmentations' (core/seeding.py)
BATCH_KEY = -1


@contextmanager
def forked_rng(device: torch.device):
    """Whatever runs inside draws from (and leaves) a copy of the global random state."""
    devices = (
        [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    )
    with torch.random.fork_rng(devices=devices):
        yield


def fixed_batch(cfg: RunConfig, data: Split) -> torch.Tensor:
    """The `health.images` training images (all of them when the split has fewer) that every measurement
    of the run reads, eval-transformed: (N, C, H, W) float32 on the CPU."""
    g = torch.Generator().manual_seed(derive_seed(cfg.seed, BATCH_KEY, STEPS))
    idx = torch.randperm(len(data), generator=g)[: cfg.health.images].sort().values.tolist()
    with forked_rng(torch.device("cpu")):  # a data loader draws its base seed from the global generator
        return torch.cat([x for x, _ in eval_batches(take(data, idx), cfg.data.image_size, cfg.eval.batch_size)])


def initial_parameters(method: Method, cfg: RunConfig) -> dict[str, torch.Tensor]:
    """The evaluated encoder's parameters as they are now (θ_0, taken before a checkpoint is loaded), on the CPU."""
    return {k: p.detach().cpu().clone() for k, p in eval_encoder(method, cfg.eval.encoder)[1].named_parameters()}


@torch.no_grad()
def health_signals(method: Method, cfg: RunConfig, images: torch.Tensor, initial: dict, device: torch.device) -> dict:
    """The health signals of `method` on `images` (the fixed batch), {"health/<name>": float}; `initial`:
    the evaluated encoder's θ_0. In eval mode (the mode it had is restored), drawing nothing from the
    global random state."""
    was_training = method.training
    encoder = eval_encoder(method, cfg.eval.encoder)[1]
    method.eval()
    try:
        with forked_rng(device):
            chunks = images.split(cfg.eval.batch_size)
            z = torch.cat([pooled(encoder, x.to(device), 1)[0][:, -1] for x in chunks])  # (N, D): `last_avg`
            own = method.diagnostics(images.to(device))
    finally:
        method.train(was_training)
    signals = {"rankme": rankme(z), "feature_std": feature_std(z), "std": std(z)}
    signals |= {"moved": encoder_moved(encoder, initial), **own}
    return {HEALTH + k: float(v) for k, v in signals.items()}


@dataclass
class Health:
    """Process 0's health measurements of one training session: what they read and when they are due."""

    cfg: RunConfig
    images: torch.Tensor  # the fixed batch
    initial: dict[str, torch.Tensor]  # θ_0 of the evaluated encoder
    device: torch.device

    @classmethod
    def start(cls, cfg: RunConfig, data: Split, method: Method, device: torch.device, main: bool) -> "Health | None":
        """Before a checkpoint is loaded (θ_0 is the method as built); None when health is off or on another process."""
        if cfg.health.every == 0 or not main:
            return None
        return cls(cfg, fixed_batch(cfg, data), initial_parameters(method, cfg), device)

    def due(self, steps: int, final: bool) -> bool:
        return final or steps % self.cfg.health.every == 0

    def measure(self, method: Method) -> dict:
        return health_signals(method, self.cfg, self.images, self.initial, self.device)


def final_health(metrics: Path) -> dict:
    """The last health values metrics.jsonl holds, without the `health/` prefix ({} when none)."""
    last = {}
    if metrics.is_file():
        for line in metrics.read_text(errors="replace").splitlines():
            record = parse_record(line)
            if record is not None and any(k.startswith(HEALTH) for k in record):
                last = record
    return {k.removeprefix(HEALTH): v for k, v in last.items() if k.startswith(HEALTH)}


def backfill(run_dir: Path, cfg: RunConfig) -> dict:
    """A finished run's end-of-training signals from its checkpoint, for runs trained before health
    existed (`bench health`): the same fixed batch and function as training's, θ_0 rebuilt as the engine
    builds it (seeded with cfg.seed, data loaded, method built). Without the `health/` prefix."""
    from bench.config.runfile import training_hash
    from bench.data.datasets import load_split
    from bench.train.checkpoint import load_checkpoint
    from bench.train.devices import select_device
    from bench.train.methods import build_method

    device = select_device(cfg)
    torch.manual_seed(cfg.seed)
    data = load_split(cfg.data, "train")
    method = build_method(cfg, data.channels).to(device)
    initial = initial_parameters(method, cfg)
    load_checkpoint(run_dir, method, training_hash(cfg))
    values = health_signals(method, cfg, fixed_batch(cfg, data), initial, device)
    return {k.removeprefix(HEALTH): v for k, v in values.items()}
