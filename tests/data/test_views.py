"""The training views as drawn numbers (bench/data/views.py) and made on the device
(bench/data/device_views.py): the CPU path equals torchvision's transforms bit for bit; the device path
crops the same boxes and differs from the CPU path only by rounding."""

import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from bench.data.device_views import adjust_hue, batch_views, gaussian_blur, grayscale, jitter_op
from bench.data.split import Split, TensorImages
from bench.data.views import FLIP, HEIGHT, LEFT, PARAMS, TOP, WIDTH, Views, image_generator
from core.method import Augmentation, Crops, MultiCrop

from .reference_transforms import train_transform

MULTI = MultiCrop(Crops(2, (0.3, 1.0)), Crops(3, (0.05, 0.3), 12))
AUGMENTATIONS = {
    "ijepa": Augmentation((0.3, 1.0)),
    "mae": Augmentation((0.2, 1.0), hflip=True, interpolation="bicubic"),
    "data2vec_v1": Augmentation((0.08, 1.0), True, "bicubic", color_jitter=0.4),
    "lejepa": Augmentation(multi_crop=MULTI),
    "plain multi-crop": Augmentation(multi_crop=MultiCrop(MULTI.global_crops, None, 0.5, (0.4, 0, 0, 0), 1.0)),
}


def split(channels: int, n: int = 24, size: int = 28) -> Split:
    """Smooth random images (upsampled noise), so that resampling differences stay small."""
    g = torch.Generator().manual_seed(channels)
    noise = torch.rand(n, channels, 7, 7, generator=g)
    x = (torch.nn.functional.interpolate(noise, size=size, mode="bilinear") * 255).to(torch.uint8)
    return Split(TensorImages(x, torch.arange(n) % 4), 4, channels, (0.5,) * channels, (0.25,) * channels, True)


def same(a, b) -> bool:
    if isinstance(a, tuple):
        return all((x is None and y is None) or torch.equal(x, y) for x, y in zip(a, b, strict=True))
    return torch.equal(a, b)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_the_drawn_views_are_torchvisions_transforms_bit_for_bit(name, channels):
    """Under torch.manual_seed(s) torchvision's transforms (how every published run was trained) make
    exactly the views that Views draws from a generator seeded with s and applies."""
    data = split(channels)
    transform, views = train_transform(data, 24, AUGMENTATIONS[name]), Views.of(data, 24, AUGMENTATIONS[name])
    for i in range(len(data)):
        image = data.dataset.images[i]
        torch.manual_seed(1000 + i)
        expected = transform(image)
        params = views.draw(torch.Generator().manual_seed(1000 + i), 28, 28)
        assert same(views.apply(image, params), expected), i
    torch.manual_seed(7)  # a decoded file (imagefolder) goes through torchvision's ToImage first
    pil = Image.fromarray(data.dataset.images[0].permute(1, 2, 0).squeeze(-1).numpy())
    expected = transform(pil)
    assert same(views.apply(TF.pil_to_tensor(pil), views.draw(torch.Generator().manual_seed(7), 28, 28)), expected)


def test_a_drawn_view_is_a_function_of_seed_step_and_image_alone():
    views = Views.of(split(1), 24, AUGMENTATIONS["mae"])
    draws = [views.draw(image_generator(3, step, i), 28, 28)[0] for step, i in [(5, 7), (5, 7), (6, 7), (5, 8)]]
    torch.rand(10)  # the global generator is not read
    assert torch.equal(draws[0], draws[1]) and torch.equal(draws[0], views.draw(image_generator(3, 5, 7), 28, 28)[0])
    assert not torch.equal(draws[0], draws[2]) and not torch.equal(draws[0], draws[3])


def draws(views: Views, n: int, step: int = 3) -> list[torch.Tensor]:
    per_image = [views.draw(image_generator(0, step, i), 28, 28) for i in range(n)]
    return [torch.stack(group) for group in zip(*per_image, strict=True)]


# the largest difference, in [0, 1] pixel units, of the device path from the CPU path: uint8 rounding
# (1/255) for crops and flips; the colour operations round after each step on the CPU
TOLERANCE = {"ijepa": 0.005, "mae": 0.08, "data2vec_v1": 0.05, "lejepa": 0.05, "plain multi-crop": 0.02}


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_the_device_path_makes_the_cpu_paths_views_from_the_same_draws(name, channels):
    """Same parameters (crop boxes, flips, colour draws): the batched views equal the per-image ones up
    to rounding. A box or a flip read differently would move pixels by far more (checked below)."""
    data, aug = split(channels), AUGMENTATIONS[name]
    views, n = Views.of(data, 24, aug), len(data)
    params = draws(views, n)
    cpu = [views.apply(data.dataset.images[i], [p[i] for p in params]) for i in range(n)]
    device = batch_views(views, data.dataset.images, params)
    if views.multi:
        expected = {"images": torch.stack([c[0] for c in cpu])}
        if cpu[0][1] is not None:
            expected["local_images"] = torch.stack([c[1] for c in cpu])
    else:
        expected = {"images": torch.stack(cpu)}
    assert device.keys() == expected.keys()
    std = torch.tensor(data.std).view(-1, 1, 1)
    for key, value in expected.items():
        assert device[key].shape == value.shape
        diff = (device[key] - value).abs() * std
        assert diff.max() < TOLERANCE[name] and diff.mean() < 0.01, (key, float(diff.max()))
    moved = [p.clone() for p in params]
    moved[0][:, :, LEFT] = torch.where(moved[0][:, :, LEFT] > 0, moved[0][:, :, LEFT] - 1, moved[0][:, :, LEFT] + 1)
    moved[0][:, :, FLIP] = 1 - moved[0][:, :, FLIP]
    wrong = batch_views(views, data.dataset.images, moved)["images"]
    assert ((wrong - expected["images"]).abs() * std).mean() > 0.02


def box(top, left, h, w, flip=0) -> torch.Tensor:
    row = torch.zeros(1, 1, PARAMS, dtype=torch.float64)
    row[0, 0, [TOP, LEFT, HEIGHT, WIDTH, FLIP]] = torch.tensor([top, left, h, w, flip], dtype=torch.float64)
    return row


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("top, left, h, w, out", [(0, 0, 28, 28, 28), (3, 5, 14, 20, 32), (1, 2, 26, 25, 12)])
def test_a_resized_crop_is_torchs_antialiased_resize_of_the_box(interpolation, top, left, h, w, out):
    """Enlarged or shrunk, the batched crop is torch's antialiased interpolation of the cropped pixels
    (what torchvision's resize calls), to float rounding."""
    data = split(1, n=1)
    aug = Augmentation((0.3, 1.0), interpolation=interpolation)
    views = Views.of(data, out, aug)
    x = data.dataset.images[:1].float() / 255
    for flip in (0, 1):  # a single view flips before it crops (BEiT's order): the box is in the flipped image
        got = batch_views(views, data.dataset.images[:1], [box(top, left, h, w, flip)])["images"] * 0.25 + 0.5
        crop = (x.flip(-1) if flip else x)[..., top : top + h, left : left + w]
        expected = torch.nn.functional.interpolate(crop, size=(out, out), mode=interpolation, antialias=True)
        assert torch.allclose(got, expected.clamp(0, 1), atol=1e-5), flip


def test_the_batched_colour_operations_are_torchvisions_per_image():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 10, 10, generator=g)
    factors = torch.tensor([0.6, 0.8, 1.0, 1.2, 1.4, 0.0])
    hues = torch.tensor([-0.5, -0.3, -0.1, 0.0, 0.2, 0.45])
    ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation)
    for op, kernel in enumerate(ops):
        for channels in (1, 3):
            image = x[:, :channels]
            expected = torch.stack([kernel(image[i], float(factors[i])) for i in range(6)])
            assert torch.allclose(jitter_op(image, op, factors), expected, atol=1e-6), (op, channels)
    expected = torch.stack([TF.adjust_hue(x[i], float(hues[i])) for i in range(6)])
    assert torch.allclose(adjust_hue(x, hues), expected, atol=1e-5)
    assert torch.allclose(grayscale(x).expand_as(x), TF.rgb_to_grayscale(x, num_output_channels=3), atol=1e-6)
    sigmas = torch.tensor([0.1, 0.5, 1.0, 2.0, 0.0, 1.5])
    blurred = gaussian_blur(x, sigmas, 5)
    for i, s in enumerate(sigmas.tolist()):
        expected = TF.gaussian_blur(x[i], [5, 5], [s, s]) if s else x[i]
        assert torch.allclose(blurred[i], expected, atol=1e-6), s
