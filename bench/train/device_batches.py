"""The device-resident data path (`data.on_device`): the training split is copied once to the device as
uint8, and each batch's views are made there at once (bench/data/device_views.py) from the parameters
drawn per (seed, step, image) on the host — the same draws as the CPU path, so the crop boxes are the
same — with the method's masks drawn by its batched sampler on the device (`input_sampler(device)`).
The data loader's workers (`data.num_workers`) draw only the parameters, a few floats an image.

`auto` (`data.on_device` unset) takes this path on CUDA for a dataset held in memory whose images take
at most RESIDENT_SHARE of the device's memory, and a resumed run the path its checkpoint was trained on;
the CPU path otherwise."""

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from bench.config.schema import RunConfig
from bench.data.device_views import batch_views
from bench.data.split import Split
from bench.data.views import Views, image_generator
from bench.errors import BenchError
from bench.train.devices import Ranks

RESIDENT_SHARE = 0.25  # of the device's memory, at most, for the resident images under `auto`


def resident(cfg: RunConfig, data: Split, device: torch.device, resumed: bool | None = None) -> bool:
    """Whether this run's batches are made on the device. Unset (`auto`), a resumed run keeps the path
    its checkpoint was trained on (`resumed`); a new one takes the device path on CUDA when the images
    fit RESIDENT_SHARE of the device's memory — its total, the same for every process on a model of
    GPU and at every start, not its free memory, which other work changes."""
    wanted = cfg.data.on_device
    if wanted is False:
        return False
    if not data.in_memory:
        if wanted:
            raise BenchError(
                f"data.on_device needs a dataset held in memory as one tensor (fashion-mnist, synthetic); "
                f"{cfg.data.name} decodes its files per image: set data.on_device: false"
            )
        return False
    if wanted:
        return True
    if resumed is not None:
        return resumed
    if device.type != "cuda":
        return False
    images = data.dataset.images
    return (
        images.numel() * images.element_size() <= RESIDENT_SHARE * torch.cuda.get_device_properties(device).total_memory
    )


class Draws(Dataset):
    """(step, index) -> (step, index, each group's (V, PARAMS) parameters): an image's draws alone."""

    def __init__(self, views: Views, seed: int, data: Split) -> None:
        self.views, self.seed, self.n = views, seed, len(data)
        self.shape = tuple(data.dataset.images.shape[-2:])  # every image's (H, W): a tensor dataset's

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: tuple[int, int]):
        step, i = key
        return step, i, self.views.draw(image_generator(self.seed, step, i), *self.shape)


def stack_draws(samples) -> tuple[int, torch.Tensor, list[torch.Tensor]]:
    groups = zip(*(s[2] for s in samples), strict=True)
    return samples[0][0], torch.tensor([s[1] for s in samples]), [torch.stack(g) for g in groups]


class DeviceBatches:
    """The run's batches, made on `device` from the parameters `draws` (a loader of `Draws`) yields:
    {"step", "images"[, "local_images"], "labels", **the batched sampler's inputs}."""

    def __init__(self, data: Split, views: Views, draws: DataLoader, inputs, where: Ranks, device) -> None:
        self.images = data.dataset.images.to(device)  # (N, C, H, W) uint8, once
        self.labels = data.dataset.labels.to(device)
        self.views, self.draws, self.inputs, self.where, self.device = views, draws, inputs, where, device

    def __iter__(self) -> Iterator[dict]:
        for step, index, params in self.draws:
            idx = index.to(self.device, non_blocking=True)
            batch = {"step": step, "labels": self.labels[idx]}
            batch |= batch_views(self.views, self.images[idx], [p.to(self.device, non_blocking=True) for p in params])
            if self.inputs is not None:
                world = self.where.world
                batch |= self.inputs.process_share(len(index) * world, step, self.where.rank, world)
            yield batch
