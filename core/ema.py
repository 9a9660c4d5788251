"""The EMA teacher and its targets, shared by every method that bootstraps its targets:
I-JEPA's target encoder (last layer, layer-normed) and data2vec's teacher (top-K layers,
each normalised, averaged, layer-normed; Baevski et al. 2022, shared/reference/baselines.md).

    teacher = EMATeacher(student)
    y = contextual_targets(teacher.layer_outputs(images, at="block"), top_k=6, layer_norm="layer")
    teacher.update(student, momentum=clock.ema(0.996, 1.0))  # after every optimizer step (core/clock.py)
"""

import copy

import torch
import torch.nn.functional as F
from torch import nn

TARGET_NORMS = ("instance", "layer")
LAYER_POINTS = ("block", "ffn")


class EMATeacher(nn.Module):
    """A frozen copy of `student` whose weights follow it as an exponential moving average."""

    def __init__(self, student: nn.Module) -> None:
        super().__init__()
        self.net = copy.deepcopy(student)
        self.net.requires_grad_(False)

    @torch.no_grad()
    def update(self, student: nn.Module, momentum: float) -> None:
        ema = list(self.net.parameters())
        new = list(student.parameters())
        torch._foreach_mul_(ema, momentum)
        torch._foreach_add_(ema, new, alpha=1.0 - momentum)

    def forward(self, *args, **kwargs):
        return self.net(*args, **kwargs)

    @torch.no_grad()
    def layer_outputs(self, images: torch.Tensor, at: str) -> list[torch.Tensor]:
        """Every block's features on the whole image, patch tokens only: a list of (B, N, D), first
        block first. `at="block"`: the block's output (data2vec v1); `at="ffn"`: its FFN output
        before the last residual (data2vec 2.0)."""
        if at not in LAYER_POINTS:
            raise ValueError(f"layer point {at!r} is not one of {', '.join(LAYER_POINTS)}")
        outputs: list[torch.Tensor] = []
        modules = [b.mlp if at == "ffn" else b for b in self.net.blocks]
        hooks = [m.register_forward_hook(lambda _m, _i, out: outputs.append(out)) for m in modules]
        try:
            self.net(images)
        finally:
            for hook in hooks:
                hook.remove()
        return [self.net.patch_tokens(h) for h in outputs]

    @torch.no_grad()
    def last_layer(self, images: torch.Tensor) -> torch.Tensor:
        """I-JEPA's targets: the final (normed) output, layer-normed again without affine: (B, N, D)."""
        h = self.net.patch_tokens(self.net(images))
        return F.layer_norm(h, h.shape[-1:])


def contextual_targets(layers: list[torch.Tensor], top_k: int, layer_norm: str) -> torch.Tensor:
    """data2vec's targets from the teacher's layer outputs (B, N, D): normalise each of the top
    `top_k` without parameters — "instance" (per channel over the tokens, data2vec 2.0) or
    "layer" (per token over the channels, data2vec v1) —, average them, layer-norm the mean."""
    if not 1 <= top_k <= len(layers):
        raise ValueError(f"top_k={top_k} must be between 1 and the encoder's {len(layers)} blocks")
    if layer_norm not in TARGET_NORMS:
        raise ValueError(f"target norm {layer_norm!r} is not one of {', '.join(TARGET_NORMS)}")
    normed = []
    for h in layers[-top_k:]:
        h = h.float()
        if layer_norm == "instance":
            normed.append(F.instance_norm(h.transpose(1, 2)).transpose(1, 2))
        else:
            normed.append(F.layer_norm(h, h.shape[-1:]))
    y = torch.stack(normed).mean(0)
    return F.layer_norm(y, y.shape[-1:])
