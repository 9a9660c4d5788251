"""A batch's views made at once on the device, from the parameters bench/data/views.py draws per image:
the same crop boxes, flips, colour jitter, grayscale, blur and solarisation, applied as batched tensor
operations to float images (the CPU path works on uint8 per image with torchvision's kernels).

Where the two paths differ, and why it does not matter to what is learnt:
- resizing: the same antialiased bilinear or bicubic filters as torchvision's resize, applied as two
  batched matrix products per batch (on uint8 torchvision rounds each pixel, here nothing is rounded);
- precision: float throughout, where the CPU path rounds to uint8 after each kernel (<= 1/255).
tests/data/test_views.py bounds the difference against the CPU path.
"""

import torch
import torch.nn.functional as F

from bench.data.views import (
    FACTORS,
    FLIP,
    GRAY,
    HEIGHT,
    JITTER,
    LEFT,
    ORDER,
    SIGMA,
    SOLARIZE,
    TOP,
    WIDTH,
    Recipe,
    Views,
)

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W): the luma of RGB images, or 1-channel images as they are."""
    if x.shape[1] == 1:
        return x
    return (x * x.new_tensor(GRAY_WEIGHTS).view(1, 3, 1, 1)).sum(1, keepdim=True)


def blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (factor * x + (1 - factor) * other).clamp(0, 1)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    top, bottom = x.max(1).values, x.min(1).values
    chroma = top - bottom
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    hue = torch.where(top == r, ((g - b) / safe) % 6, torch.where(top == g, (b - r) / safe + 2, (r - g) / safe + 4))
    hue = torch.where(chroma > 0, hue / 6, torch.zeros_like(hue))
    sat = torch.where(top > 0, chroma / torch.where(top > 0, top, torch.ones_like(top)), torch.zeros_like(top))
    return torch.stack([hue, sat, top], 1)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    h, s, v = x.unbind(1)
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], 1)  # r, g, b
    return v.unsqueeze(1) - (v * s).unsqueeze(1) * (torch.minimum(k, 4 - k).clamp(0, 1))


def adjust_hue(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    hsv = rgb_to_hsv(x)
    hsv[:, 0] = (hsv[:, 0] + factor.view(-1, 1, 1)) % 1.0
    return hsv_to_rgb(hsv)


def jitter_op(x: torch.Tensor, op: int, factor: torch.Tensor) -> torch.Tensor:
    """ColorJitter's operation `op` (brightness, contrast, saturation, hue) with per-image factors (N,)."""
    f = factor.view(-1, 1, 1, 1)
    if op == 0:
        return (f * x).clamp(0, 1)
    if op == 1:
        return blend(x, grayscale(x).mean((1, 2, 3), keepdim=True), f)
    if op == 2:
        return x if x.shape[1] == 1 else blend(x, grayscale(x), f)
    return adjust_hue(x, factor)


def batch_jitter(x: torch.Tensor, params: torch.Tensor, ranges) -> torch.Tensor:
    """Each image's jitter in its own drawn order: at each of the 4 positions, every set operation is
    computed and each image keeps the one its order names there."""
    on = params[:, JITTER].bool()
    order, factors = params[:, ORDER].long(), params[:, FACTORS].to(x.dtype)
    for position in range(4):
        out = x
        for op in range(4):
            if ranges[op] is not None:
                chosen = (on & (order[:, position] == op)).view(-1, 1, 1, 1)
                out = torch.where(chosen, jitter_op(x, op, factors[:, op]), out)
        x = out
    return x


def filter_weights(x: torch.Tensor, mode: str) -> torch.Tensor:
    """The resampling filter at distances `x`: triangle (bilinear) or Keys' cubic with a = -0.5 (bicubic),
    the filters of torch's antialiased interpolation (what torchvision's resize with antialias uses)."""
    x = x.abs()
    if mode == "bilinear":
        return (1 - x).clamp(min=0)
    a = -0.5
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def resize_weights(start: torch.Tensor, length: torch.Tensor, size: int, out: int, mode: str) -> torch.Tensor:
    """(N, out, size): row u holds the weights with which output pixel u of each image's crop
    [start, start + length) of an axis of `size` pixels, resized to `out`, reads the input's pixels —
    torch's antialiased resampling (the filter widened by the shrink factor), written as a matrix."""
    scale = (length / out).view(-1, 1, 1)
    stretch = scale.clamp(min=1)  # shrinking widens the filter: antialiasing
    centre = start.view(-1, 1, 1) + (torch.arange(out, device=start.device).view(1, -1, 1) + 0.5) * scale
    pixel = torch.arange(size, device=start.device).view(1, 1, -1)
    w = filter_weights((pixel + 0.5 - centre) / stretch, mode)
    inside = (pixel >= start.view(-1, 1, 1)) & (pixel < (start + length).view(-1, 1, 1))
    w = w * inside
    return w / w.sum(-1, keepdim=True)


def resized_crops(x: torch.Tensor, params: torch.Tensor, size: int, mode: str, flip_first: bool) -> torch.Tensor:
    """Each image's crop box resized to `size` x `size` and mirrored where it flips, as two batched
    matrix products. A flip before the crop (`flip_first`) is the mirrored crop of the mirrored box."""
    p = params.to(x.dtype)
    height, width = x.shape[-2:]
    top, left, h, w, flip = p[:, TOP], p[:, LEFT], p[:, HEIGHT], p[:, WIDTH], p[:, FLIP] > 0
    if flip_first:
        left = torch.where(flip, width - left - w, left)
    rows = resize_weights(top, h, height, size, mode)  # (N, S, H)
    cols = resize_weights(left, w, width, size, mode)  # (N, S, W)
    cols = torch.where(flip.view(-1, 1, 1), cols.flip(1), cols)
    return (rows.unsqueeze(1) @ x @ cols.transpose(1, 2).unsqueeze(1)).clamp(0, 1)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel: int) -> torch.Tensor:
    """torchvision's Gaussian blur (reflect padding, kernel of `kernel` taps) with a sigma per image;
    images with sigma 0 are left as they are."""
    n, c, h, w = x.shape
    taps = torch.arange(kernel, device=x.device, dtype=x.dtype) - (kernel - 1) / 2
    safe = torch.where(sigma > 0, sigma, torch.ones_like(sigma)).to(x.dtype)
    k = torch.exp(-0.5 * (taps / safe.view(-1, 1)) ** 2)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (N C, kernel)
    pad = kernel // 2
    y = F.pad(x.reshape(1, n * c, h, w), (pad, pad, pad, pad), mode="reflect")
    y = F.conv2d(y, k.view(n * c, 1, 1, kernel), groups=n * c)
    y = F.conv2d(y, k.view(n * c, 1, kernel, 1), groups=n * c).view(n, c, h, w)
    return torch.where((sigma > 0).view(-1, 1, 1, 1), y, x)


def apply_views(images: torch.Tensor, params: torch.Tensor, recipe: Recipe, mean, std) -> torch.Tensor:
    """(N, C, S, S) normalised views of `images` (N, C, H, W) uint8, one per row of `params` (N, PARAMS)."""
    x = images.float() / 255
    p = params.to(x.device)
    if not recipe.crop_first and recipe.jitter is not None:
        x = batch_jitter(x, p, recipe.jitter)
    x = resized_crops(x, p, recipe.size, recipe.interpolation, flip_first=not recipe.crop_first)
    if recipe.crop_first:
        x = batch_jitter(x, p, recipe.jitter)
        if recipe.grayscale is not None:
            x = torch.where(p[:, GRAY].bool().view(-1, 1, 1, 1), grayscale(x).expand_as(x), x)
        if recipe.blur is not None:
            x = gaussian_blur(x, p[:, SIGMA], recipe.kernel)
        x = torch.where(p[:, SOLARIZE].bool().view(-1, 1, 1, 1) & (x >= 128 / 255), 1 - x, x)
    mean, std = x.new_tensor(mean).view(1, -1, 1, 1), x.new_tensor(std).view(1, -1, 1, 1)
    return (x - mean) / std


def batch_views(views: Views, images: torch.Tensor, params: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """A batch's views of `images` (B, C, H, W) uint8 from each group's parameters (B, V, PARAMS): what
    the CPU path's collate stacks, "images" (B, C, S, S), or a multi-crop's "images" (B, Vg, C, S, S)
    and "local_images" (B, Vl, C, s, s)."""
    out = []
    for (count, recipe), p in zip(views.groups, params, strict=True):
        x = apply_views(images.repeat_interleave(count, 0), p.flatten(0, 1), recipe, views.mean, views.std)
        out.append(x.unflatten(0, (len(images), count)))
    if not views.multi:
        return {"images": out[0][:, 0]}
    return {"images": out[0]} | ({"local_images": out[1]} if len(out) > 1 else {})
