"""Training batches indexed by step: the data order, the augmentations and the method's per-step
inputs (masks) are functions of (seed, step, image), so a resumed or multi-process run sees what
one uninterrupted process would."""

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.transforms.v2.functional import pil_to_tensor

from bench.config.schema import RunConfig
from bench.data.split import Split
from bench.data.views import Views, image_generator
from bench.errors import BenchError
from bench.train.device_batches import DeviceBatches, Draws, resident, stack_draws
from bench.train.devices import ONE_PROCESS, Ranks
from bench.train.methods import augmentation
from core.method import InputSampler
from core.seeding import EPOCHS, derive_seed


class StepSampler(Sampler):
    """Yields batches of (step, index) for steps start, start+1, ...: the order of epoch e is a
    permutation seeded by (seed, e), so a resumed run sees the same data at the same step.
    Process `rank` of `world` gets its contiguous share of each global batch."""

    def __init__(self, n: int, batch_size: int, seed: int, start_step: int, ranks: Ranks = ONE_PROCESS) -> None:
        if n < batch_size:
            raise BenchError(f"optim.batch_size={batch_size} is larger than the dataset ({n} images)")
        if batch_size % ranks.world:
            raise BenchError(f"optim.batch_size={batch_size} does not split evenly over {ranks.world} processes")
        self.n, self.batch_size, self.seed, self.start = n, batch_size, seed, start_step
        self.steps_per_epoch = n // batch_size
        self.local = batch_size // ranks.world
        self.offset = ranks.rank * self.local

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step, perm, perm_epoch = self.start, None, -1
        while True:
            epoch, i = divmod(step, self.steps_per_epoch)
            if epoch != perm_epoch:
                order = torch.Generator().manual_seed(derive_seed(self.seed, epoch, EPOCHS))
                perm, perm_epoch = torch.randperm(self.n, generator=order), epoch
            start = i * self.batch_size + self.offset
            yield [(step, int(j)) for j in perm[start : start + self.local]]
            step += 1


class StepTagged(Dataset):
    """(step, index) -> (step, views, label), each image's augmentation drawn from a generator seeded by
    (seed, step, index) (bench/data/views.py): the same image gets the same crop at the same step whatever
    process or data-loader worker loads it, so resumed and multi-process runs see what one process would."""

    def __init__(self, data: Split, views: Views, seed: int) -> None:
        self.data, self.views, self.seed = data, views, seed

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: tuple[int, int]):
        step, i = key
        image, label = self.data.dataset[i]
        if not isinstance(image, torch.Tensor):  # a decoded file: torchvision's ToImage
            image = pil_to_tensor(image)
        return step, self.views.apply(image, self.draw(step, i, image)), label

    def draw(self, step: int, i: int, image: torch.Tensor) -> list[torch.Tensor]:
        """Image i's augmentation parameters at `step` (each group's (V, PARAMS))."""
        return self.views.draw(image_generator(self.seed, step, i), *image.shape[-2:])


class Collate:
    """Stacks a batch and adds the method's per-step inputs (I-JEPA: masks). Picklable for workers.
    A multi-crop's views are stacked per kind: `images` (B, Vg, C, H, W), `local_images` (B, Vl, C, h, w).

    The inputs are drawn for the global batch and process `rank` keeps its share: the sampler's
    `process_share` (core/method.py InputSampler: cut along its `batch_dims`, or its own cut)."""

    def __init__(self, sampler: InputSampler | None, ranks: Ranks = ONE_PROCESS) -> None:
        self.sampler, self.ranks = sampler, ranks

    def __call__(self, samples) -> dict:
        step = samples[0][0]
        batch = {"step": step}
        if isinstance(samples[0][1], tuple):  # a multi-crop: (global views, local views or None) per image
            batch["images"] = torch.stack([s[1][0] for s in samples])  # (B, Vg, C, H, W)
            if samples[0][1][1] is not None:
                batch["local_images"] = torch.stack([s[1][1] for s in samples])  # (B, Vl, C, h, w)
        else:
            batch["images"] = torch.stack([s[1] for s in samples])
        batch["labels"] = torch.tensor([s[2] for s in samples])
        if self.sampler is not None:
            rank, world = self.ranks.rank, self.ranks.world
            batch.update(self.sampler.process_share(len(samples) * world, step, rank, world))
        return batch


def step_loader(cfg: RunConfig, dataset: Dataset, collate, sampler: StepSampler, device: torch.device) -> DataLoader:
    """`dataset` read by the step sampler's keys in `data.num_workers` workers, pinned for a copy to a GPU;
    the workers' seed comes from the run's own generator, not from the global one the model draws from."""
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=cfg.data.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=cfg.data.num_workers > 0,
        generator=torch.Generator().manual_seed(cfg.seed),
    )


def training_loader(
    cfg: RunConfig, data: Split, method, sampler: StepSampler, where: Ranks, device: torch.device, resumed=None
):
    """The run's batches from `sampler`'s first step on, augmented by the method's augmentation, with the
    method's per-step inputs: made on the device from a resident copy of the split where
    `data.on_device` says so (bench/train/device_batches.py; `resumed`: the path the checkpoint's
    session took; the loader's workers draw only the parameters), else per image in the loader."""
    views = Views.of(data, cfg.data.image_size, augmentation(cfg))
    if resident(cfg, data, device, resumed):
        draws = step_loader(cfg, Draws(views, cfg.seed, data), stack_draws, sampler, device)
        return DeviceBatches(data, views, draws, method.input_sampler(device), where, device)
    return step_loader(cfg, StepTagged(data, views, cfg.seed), Collate(method.input_sampler(), where), sampler, device)
