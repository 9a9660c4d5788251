import pytest
import torch
import torch.nn.functional as F

from core.clock import Clock
from core.ema import EMATeacher
from core.vit import BACKBONES
from ijepa.config import IJEPAConfig, MaskConfig
from ijepa.model import IJEPA

from ..conftest import needs_fashion_mnist


def small_ijepa(loss="smooth_l1"):
    torch.manual_seed(0)
    enc = BACKBONES.get("vit_nano_patch4")(img_size=16, in_chans=1)
    cfg = IJEPAConfig(predictor_depth=2, predictor_width=48, loss=loss, mask=MaskConfig(num_targets=3, min_keep=0))
    return IJEPA(enc, cfg).eval()


def reference_predictor(pred, z, ctx, tgt):
    """One target block at a time, written out step by step."""
    outs = []
    pos = pred.pos_embed[0]  # (N, d)
    for m in range(tgt.shape[0]):
        x = pred.embed(z) + pos[ctx]  # (B, Nc, d)
        q = pred.mask_token[0] + pos[tgt[m]]  # (B, Nt, d)
        h = torch.cat([x, q], dim=1)
        for block in pred.blocks:
            h = block(h)
        outs.append(pred.proj(pred.norm(h)[:, ctx.shape[1] :]))
    return torch.cat(outs)  # (M*B, Nt, D), target-major


def test_predictor_matches_per_target_reference():
    model = small_ijepa()
    ctx, tgt = model.masks(4, 0)
    z = torch.randn(4, ctx.shape[1], 96)
    torch.testing.assert_close(model.predictor(z, ctx, tgt), reference_predictor(model.predictor, z, ctx, tgt))


def test_targets_are_layer_normed_then_gathered():
    model = small_ijepa()
    images = torch.randn(4, 1, 16, 16)
    _, tgt = model.masks(4, 1)
    h = model.target.net(images)  # (B, N, D)
    h = (h - h.mean(-1, keepdim=True)) / torch.sqrt(h.var(-1, unbiased=False, keepdim=True) + 1e-5)
    expected = torch.cat([torch.stack([h[b, tgt[m, b]] for b in range(4)]) for m in range(tgt.shape[0])])
    torch.testing.assert_close(model.targets(images, tgt), expected)


@pytest.mark.parametrize("loss", ["smooth_l1", "l2"])
def test_loss_matches_a_direct_computation(loss):
    model = small_ijepa(loss)
    images = torch.randn(4, 1, 16, 16)
    ctx, tgt = model.masks(4, 2)
    out = model({"images": images, "masks_ctx": ctx, "masks_tgt": tgt})
    pred = reference_predictor(model.predictor, model.encoder(images, keep=ctx), ctx, tgt)
    target = model.targets(images, tgt)
    fn = F.smooth_l1_loss if loss == "smooth_l1" else F.mse_loss
    torch.testing.assert_close(out["loss"], fn(pred, target))


def test_only_the_context_encoder_and_predictor_get_gradients():
    model = small_ijepa().train()
    ctx, tgt = model.masks(2, 0)
    model({"images": torch.randn(2, 1, 16, 16), "masks_ctx": ctx, "masks_tgt": tgt})["loss"].backward()
    assert all(p.grad is None for p in model.target.parameters())
    assert all(p.grad is not None for p in model.encoder.parameters())
    assert model.predictor.mask_token.grad is not None


def test_init_is_the_official_pipelines():
    """src/helper.py init_model re-initialises every Linear with trunc-normal(0.02) after building,
    undoing the 1/sqrt(2l) rescale: block 12 of ViT-B keeps std 0.02 (the rescale alone: 0.0041)."""
    from core.vit import BACKBONES
    from ijepa.config import IJEPAConfig

    torch.manual_seed(0)
    encoder = BACKBONES.get("vit_base_patch16")(img_size=224, in_chans=3)
    assert float(encoder.blocks[11].mlp.fc2.weight.detach().std()) == pytest.approx(0.02 / 24**0.5, rel=0.05)
    model = IJEPA(encoder, IJEPAConfig(predictor_depth=2))
    for block in (model.encoder.blocks[11], model.predictor.blocks[1]):
        for weight in (block.attn.proj.weight, block.mlp.fc2.weight):
            assert float(weight.detach().std()) == pytest.approx(0.02, rel=0.03)
    torch.testing.assert_close(model.target.net.blocks[11].mlp.fc2.weight, model.encoder.blocks[11].mlp.fc2.weight)


def test_ema_update_and_ramp():
    student = torch.nn.Linear(3, 3)
    teacher = EMATeacher(student)
    before = teacher.net.weight.detach().clone()
    with torch.no_grad():
        student.weight.add_(1.0)
    teacher.update(student, 0.9)
    torch.testing.assert_close(teacher.net.weight, 0.9 * before + 0.1 * student.weight)
    # recipe: paper: the official ramp over the paper's 187,500 updates, read at step / 187,500
    assert Clock(0.3, 0, "paper", 187_500).ema(0.996, 1.0) == 0.996
    assert Clock(0.3, 93_750, "paper", 187_500).ema(0.996, 1.0) == pytest.approx(0.998)
    assert Clock(0.3, 187_500, "paper", 187_500).ema(0.996, 1.0) == 1.0
    # recipe: budget: 0.998 at half of a 187,500-update run is unchanged; at half of a 1,875-update run its
    # time constant of 500 updates becomes 5 -> 0.8; 1.0 stays 1.0
    assert Clock(0.5, 93_750, "budget", 187_500).ema(0.996, 1.0) == pytest.approx(0.998)
    assert Clock(0.5, 937.5, "budget", 187_500).ema(0.996, 1.0) == pytest.approx(0.8)
    assert Clock(1.0, 1_875, "budget", 187_500).ema(0.996, 1.0) == 1.0


@pytest.mark.slow
@needs_fashion_mnist
def test_loss_falls_on_fashion_mnist(tmp_path):
    from bench.config.validate import build_config
    from bench.train.engine import train

    cfg = build_config(
        {
            "backbone": "vit_nano_patch4",
            "budget": {"kind": "steps", "value": 30},
            "optim": {"batch_size": 64, "lr_factor": 16},  # 5e-4 at batch 64
            "log_every": 5,
            "ijepa": {"predictor_depth": 1, "predictor_width": 48, "mask": {"min_keep": 3}},
        }
    )
    train(cfg, tmp_path)
    import json

    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]  # not step 0's health record
    # with the recipe scaled to 30 steps the target follows the student closely (momentum 0 at first):
    # the loss falls to 0.74 of its start here (it fell below half with the paper's 0.996 and 1e-3 unscaled)
    assert losses[-1] < 0.8 * losses[0]
