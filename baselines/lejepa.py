"""LeJEPA (Balestriero & LeCun 2025, *LeJEPA: Provable and Scalable Self-Supervised Learning Without the
Heuristics*, arXiv 2511.08544; shared/reference/lejepa.md).

One encoder, no EMA teacher, no stop-gradient, no predictor. Each image comes as V_g global and V_l
local views (a multi-crop: core/method.py `MultiCrop`); every view's [cls] output goes through a
projector (an MLP with BatchNorm and ReLU between its layers) to z (V, B, K). The loss is

    (1 - lam) * mean over (V, B, K) of (z - mu)^2,   mu = the mean of the global views' z (no detach)
    + lam * SIGReg(z): Epps-Pulley of each view's projections on M random unit slices, averaged

(baselines/sigreg.py). The slices are redrawn every step from (seed, step), the same on every
process (the input sampler draws them, like the other methods' masks). The probe reads the encoder,
never the projector; the encoder is the evaluated one (`student`, the only one).
"""

import torch
from torch import nn
from torchvision.ops import MLP

from baselines.config import LeJEPAConfig
from baselines.sigreg import knots, sigreg, unit_slices
from core.errors import BenchError
from core.grid_masks import step_generator
from core.method import Augmentation, Crops, InputSampler, Method, MethodSpec, MultiCrop, PaperRun, register_method
from core.ranges import COUNT, NON_NEGATIVE, POSITIVE, SHARE, WIDTH, Range
from core.vit import VisionTransformer

PROBABILITY = Range(0, 1)


class Slices(InputSampler):
    """SIGReg's M unit directions in R^K for a step, from (seed, step): every process draws the same
    ones (they are not per image: no batch dimension, each process gets them all), on the CPU or, from
    a generator there, on the sampler's device (`on`)."""

    batch_dims = {"slices": None}

    def __init__(self, dim: int, count: int, seed: int = 0) -> None:
        self.dim, self.count, self.seed = dim, count, seed

    def __call__(self, batch_size: int, step: int) -> dict[str, torch.Tensor]:
        return {"slices": unit_slices(self.dim, self.count, step_generator(self.seed, step, self.device))}


class LeJEPA(Method):
    evaluated = "student"

    def __init__(self, encoder: VisionTransformer, cfg: LeJEPAConfig, seed: int = 0) -> None:
        super().__init__()
        if encoder.cls_token is None:
            raise ValueError("LeJEPA's encoder needs a [cls] token")
        if cfg.local_views and cfg.local_size % encoder.patch_size:
            patch = encoder.patch_size
            raise ValueError(f"lejepa.local_size={cfg.local_size} is not a multiple of the patch size {patch}")
        if cfg.knots < 2:
            raise ValueError(f"lejepa.knots must be >= 2, got {cfg.knots}")
        self.cfg, self.encoder = cfg, encoder
        hidden = [cfg.proj_hidden] * (cfg.proj_layers - 1)
        self.projector = MLP(encoder.embed_dim, [*hidden, cfg.proj_dim], norm_layer=nn.BatchNorm1d)
        t, weights = knots(cfg.knots, cfg.t_max)
        self.register_buffer("t", t, persistent=False)
        self.register_buffer("weights", weights, persistent=False)
        self.slices = Slices(cfg.proj_dim, cfg.slices, seed)

    def input_sampler(self, device: torch.device | None = None) -> Slices:
        return self.slices.on(device)

    def encoders(self) -> dict[str, VisionTransformer]:
        return {"student": self.encoder}

    def embed(self, views: torch.Tensor) -> torch.Tensor:
        """Views (B, V, C, H, W) → their [cls] outputs (B*V, D), image-major."""
        return self.encoder(views.flatten(0, 1))[:, 0]

    def projections(self, batch: dict) -> torch.Tensor:
        """Every view's projection, (V, B, K): the global views first."""
        groups = [batch["images"]] + ([batch["local_images"]] if "local_images" in batch else [])
        b = groups[0].shape[0]
        z = self.projector(torch.cat([self.embed(g) for g in groups])).float()  # one BatchNorm over all views
        out, start = [], 0
        for g in groups:
            count = b * g.shape[1]
            out.append(z[start : start + count].reshape(b, g.shape[1], -1).transpose(0, 1))
            start += count
        return torch.cat(out)

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        z = self.projections(batch)  # (V, B, K)
        centre = z[: batch["images"].shape[1]].mean(0)
        prediction = (z - centre).square().mean()
        statistic = sigreg(z, batch["slices"], self.t, self.weights)
        loss = self.cfg.lam * statistic + (1 - self.cfg.lam) * prediction
        return {"loss": loss, "pred_loss": prediction.detach(), "sigreg": statistic.detach()}

    @torch.no_grad()
    def diagnostics(self, images: torch.Tensor) -> dict[str, float]:
        """SIGReg of the projections of held-out images (B, C, H, W), one view, on slices fixed by the
        seed, in this process alone: near 0 for Gaussian embeddings, large when they collapse."""
        z = self.projector(self.encoder(images)[:, 0]).float().unsqueeze(0)
        fixed = self.slices(len(images), 0)["slices"]  # step 0's
        return {"sigreg": float(sigreg(z, fixed, self.t, self.weights, reduce=False))}


def build(encoder: VisionTransformer, cfg: LeJEPAConfig, in_chans: int, seed: int) -> LeJEPA:
    return LeJEPA(encoder, cfg, seed=seed)


def augmentation(cfg: LeJEPAConfig) -> Augmentation:
    """The multi-crop of LeJEPA's README: global and local crops, each with flip, colour jitter,
    grayscale, blur and solarisation."""
    if len(cfg.color_jitter) != 4 or not 0 <= cfg.color_jitter[3] <= 0.5:
        raise BenchError(f"lejepa.color_jitter is (brightness, contrast, saturation, hue <= 0.5): {cfg.color_jitter}")
    local = Crops(cfg.local_views, tuple(cfg.local_scale), cfg.local_size) if cfg.local_views else None
    crops = MultiCrop(
        Crops(cfg.global_views, tuple(cfg.global_scale)),
        local,
        hflip=cfg.hflip,
        jitter=tuple(cfg.color_jitter),
        jitter_prob=cfg.jitter_prob,
        grayscale=cfg.grayscale,
        blur=cfg.blur,
        solarize=cfg.solarize,
    )
    return Augmentation(multi_crop=crops)


register_method(
    MethodSpec(
        name="lejepa",
        build=build,
        section=LeJEPAConfig,
        augmentation=augmentation,
        cls_token=True,
        # MINIMAL.md's run, the one fully stated recipe: AdamW, lr 2e-3 at batch 256 after a one-epoch
        # linear warm-up from 1 % of it, weight decay 0.05 throughout, no clipping; the cosine ends at
        # lr / 1000 as the README says (MINIMAL's eta_min=1e-3 is an absolute floor, half its peak)
        recipe={
            "lr": 2e-3,
            "start_lr": 2e-5,
            "final_lr": 2e-6,
            "warmup": 1 / 800,
            "weight_decay": 0.05,
            "final_weight_decay": 0.05,
            "clip_grad": None,
        },
        paper_run=PaperRun(28_800, 256, "MINIMAL.md: ViT-S/8 on Imagenette, 800 epochs x 36 updates (9,469 // 256)"),
        ranges={
            "global_views": COUNT,
            "local_views": NON_NEGATIVE,
            "global_scale": SHARE,
            "local_scale": SHARE,
            "local_size": COUNT,
            "lam": PROBABILITY,
            "slices": COUNT,
            "knots": Range(2, 1025),
            "t_max": POSITIVE,
            "proj_hidden": WIDTH,
            "proj_dim": WIDTH,
            "proj_layers": Range(1, 16),
            "hflip": PROBABILITY,
            "color_jitter": NON_NEGATIVE,
            "jitter_prob": PROBABILITY,
            "grayscale": PROBABILITY,
            "blur": PROBABILITY,
            "solarize": PROBABILITY,
        },
    )
)
