"""MAE, data2vec 2.0 and data2vec v1: masks, targets and losses against step-by-step references,
and every baseline through the one training loop."""

import functools
import json
import math

import pytest
import torch
import torch.nn.functional as F

from baselines.config import Data2VecConfig, Data2VecV1Config, MAEConfig
from baselines.data2vec import Data2Vec, Data2VecV1
from baselines.mae import MAE, patchify
from baselines.masking import BlockMask, InverseBlockKeep, RandomKeep
from bench.config.runfile import to_dict
from bench.config.validate import build_config
from bench.train import schedules
from bench.train.engine import train
from core.clock import Clock
from core.ema import EMATeacher, contextual_targets
from core.vit import BACKBONES

from ..conftest import TINY_METHODS, train_preempted

BASELINES = ("mae", "data2vec", "data2vec_v1")


def nano(img_size=16, cls_token=True):
    torch.manual_seed(0)
    return BACKBONES.get("vit_nano_patch4")(img_size=img_size, in_chans=1, cls_token=cls_token)


def neighbours(kept: torch.Tensor) -> float:
    """Mean number of kept 4-neighbours of a kept patch; kept (S, H, W) bool."""
    k = kept.float()
    pad = F.pad(k, (1, 1, 1, 1))
    around = pad[:, :-2, 1:-1] + pad[:, 2:, 1:-1] + pad[:, 1:-1, :-2] + pad[:, 1:-1, 2:]
    return float((around * k).sum() / k.sum())


# --- masks ----------------------------------------------------------------------------------


def test_mae_keeps_a_uniform_quarter_per_sample():
    masks = RandomKeep((14, 14), 0.75, seed=0)
    keep = masks(256, step=3)["keep"]
    assert keep.shape == (256, 49)  # int(196 * 0.25)
    assert (keep.diff(dim=1) > 0).all()  # sorted, no repeats
    torch.testing.assert_close(keep, masks(256, step=3)["keep"])  # replayed from (seed, step)
    assert not torch.equal(keep, masks(256, step=4)["keep"])
    freq = torch.zeros(196).index_add_(0, keep.flatten(), torch.ones(keep.numel())) / 256
    assert freq.mean() == pytest.approx(0.25) and 0.15 < freq.min() and freq.max() < 0.35


def test_data2vec_inverse_block_masks():
    masks = InverseBlockKeep((14, 14), 0.8, block=3, clones=4, seed=0)
    keep = masks(32, step=0)["keep"]
    assert keep.shape == (128, 196 - int(196 * 0.8))  # 40 kept, 156 masked: 79.6 %
    assert (keep.diff(dim=1) > 0).all()
    clones = keep.view(32, 4, -1)
    assert not torch.equal(clones[:, 0], clones[:, 1])  # every clone has its own mask
    kept = torch.zeros(128, 196, dtype=torch.bool).scatter_(1, keep, True).view(128, 14, 14)
    uniform = torch.zeros(128, 196, dtype=torch.bool)
    uniform.scatter_(1, RandomKeep((14, 14), 0.8)(128, 0)["keep"], True)
    # kept patches come in 3x3 blocks: ~2.7 kept neighbours each, vs ~0.8 for uniform masking
    assert neighbours(kept) > 2.2 and neighbours(uniform.view(128, 14, 14)) < 1.2


def test_beit_block_masks_for_data2vec_v1():
    masks = BlockMask((14, 14), Data2VecV1Config().mask_ratio, min_block=16, seed=0)
    masked = masks(64, step=0)["masked"]
    counts = masked.sum(1).float()
    assert masks.target == 120 and counts.max() <= 120 and counts.mean() > 0.9 * 120  # BEiT's 120 of 196
    torch.testing.assert_close(masked, masks(64, step=0)["masked"])
    assert neighbours(masked.view(64, 14, 14)) > 3.0  # blocks, not scattered patches


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: RandomKeep((2, 2), 0.9), "keeps no patch"),
        (lambda: InverseBlockKeep((4, 4), 1.5, 3, 2), "must be in"),
        (lambda: BlockMask((4, 4), 0.5, min_block=16), "min_block=16"),
    ],
)
def test_impossible_masks_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# --- MAE ------------------------------------------------------------------------------------


def test_patchify_matches_the_patch_embedding_order():
    images = torch.randn(2, 3, 16, 16)
    patches = patchify(images, 4)  # (B, 16, 48)
    for i in range(4):
        for j in range(4):
            block = images[:, :, 4 * i : 4 * i + 4, 4 * j : 4 * j + 4].permute(0, 2, 3, 1).flatten(1)
            torch.testing.assert_close(patches[:, 4 * i + j], block)


def small_mae(norm_pix=True):
    cfg = MAEConfig(decoder_depth=1, decoder_width=48, decoder_heads=3, norm_pix_loss=norm_pix)
    return MAE(nano(), cfg, in_chans=1).eval()


def test_mae_decoder_unshuffles_into_mask_tokens():
    model = small_mae()
    keep = model.masks(3, 0)["keep"]
    z = torch.randn(3, 1 + keep.shape[1], 96)
    x = model.decoder_embed(z)
    full = model.mask_token.expand(3, 16, -1).clone()
    for b in range(3):
        full[b, keep[b]] = x[b, 1:]
    h = torch.cat([x[:, :1], full + model.decoder_pos], 1)
    for block in model.decoder_blocks:
        h = block(h)
    torch.testing.assert_close(model.decode(z, keep), model.decoder_pred(model.decoder_norm(h))[:, 1:])


@pytest.mark.parametrize("norm_pix", [True, False])
def test_mae_loss_is_mse_on_removed_patches_only(norm_pix):
    model = small_mae(norm_pix)
    images = torch.randn(3, 1, 16, 16)
    batch = {"images": images} | model.masks(3, 0)
    pred = model.decode(model.encoder(images, keep=batch["keep"]), batch["keep"])
    losses = []
    for b in range(3):
        for n in range(16):
            if n in batch["keep"][b]:
                continue
            t = patchify(images, 4)[b, n]
            if norm_pix:
                t = (t - t.mean()) / torch.sqrt(t.var() + 1e-6)
            losses.append(((pred[b, n] - t) ** 2).mean())
    assert len(losses) == 3 * 12
    torch.testing.assert_close(model(batch)["loss"], torch.stack(losses).mean())


# --- data2vec -------------------------------------------------------------------------------


@pytest.mark.parametrize("at", ["ffn", "block"])
def test_layer_outputs_are_block_or_ffn_outputs(at):
    teacher = EMATeacher(nano())
    images = torch.randn(2, 1, 16, 16)
    net = teacher.net
    x = torch.cat([net.cls_token.expand(2, -1, -1), net.embed(images)], 1)
    expected = []
    for block in net.blocks:
        x = x + block.attn(block.norm1(x))
        ffn = block.mlp(block.norm2(x))  # data2vec 2.0: the FFN output before the last residual
        x = x + ffn  # data2vec v1: the block's output
        expected.append((ffn if at == "ffn" else x)[:, 1:])  # patch tokens only
    for got, want in zip(teacher.layer_outputs(images, at=at), expected, strict=True):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("norm", ["instance", "layer"])
def test_contextual_targets_match_a_written_out_reference(norm):
    layers = [torch.randn(2, 16, 8) * (i + 1) + i for i in range(4)]

    def standardise(h, dim):
        return (h - h.mean(dim, keepdim=True)) / torch.sqrt(h.var(dim, unbiased=False, keepdim=True) + 1e-5)

    per_layer = [standardise(h, 1 if norm == "instance" else -1) for h in layers[-3:]]
    expected = standardise(sum(per_layer) / 3, -1)
    torch.testing.assert_close(contextual_targets(layers, top_k=3, layer_norm=norm), expected)


def small_data2vec(noise=0.0):
    cfg = Data2VecConfig(num_clones=3, decoder_dim=48, decoder_layers=2, decoder_groups=3, mask_noise_std=noise)
    return Data2Vec(nano(), cfg).eval()


def test_data2vec_loss_matches_one_clone_at_a_time():
    """Embed-once-and-clone, gathering, decoding and the two losses against a per-clone loop."""
    model = small_data2vec().double()  # float64: the batched and the per-clone paths agree to rounding
    images = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    batch = {"images": images} | model.masks(2, 0)
    keep, r, d = batch["keep"], 3, 96
    assert model.top_k == 3  # fairseq's share of the blocks (3/4) on the nano's 4
    y = contextual_targets(model.teacher.layer_outputs(images, at="ffn"), 3, "instance")
    patch, cls = [], []
    for i in range(2):
        for c in range(r):
            k = keep[i * r + c]
            z = model.encoder(images[i : i + 1], keep=k[None])  # (1, 1+K, D)
            full = torch.zeros(1, 16, d, dtype=torch.float64)
            full[0, k] = z[0, 1:]
            pred = model.decoder(full)[0]
            masked = torch.ones(16, dtype=torch.bool)
            masked[k] = False
            patch.append(((pred[masked] - y[i, masked]) ** 2).sum(-1) / math.sqrt(d))
            cls.append(((z[0, 0] - y[i].mean(0)) ** 2).sum() / math.sqrt(d))
    out = model(batch)
    close = functools.partial(torch.testing.assert_close, check_dtype=False)  # the losses are float32
    close(out["patch_loss"], torch.cat(patch).mean())
    close(out["cls_loss"], torch.stack(cls).mean())
    # fairseq (data2vec2.py, model_criterion.py, trainer.py): the patch losses are summed, the [cls]
    # losses multiplied by cls_loss * sample_size and summed over the clones, and the total divided by
    # sample_size, the number of masked patches over all clones of the process
    sample_size = sum(len(p) for p in patch)
    official = (torch.cat(patch).sum() + (0.01 * sample_size) * torch.stack(cls).sum()) / sample_size
    close(out["loss"], official)
    close(out["loss"], out["patch_loss"] + 0.01 * 2 * 3 * out["cls_loss"])  # B R x the mean


def test_data2vec_masked_slots_enter_the_decoder_as_small_noise():
    model = small_data2vec(noise=0.01)
    batch = {"images": torch.randn(4, 1, 16, 16)} | model.masks(4, 0)
    seen = {}
    model.decoder.register_forward_pre_hook(lambda _m, args: seen.update(x=args[0].detach()))
    model(batch)
    keep = batch["keep"]
    masked = torch.ones(keep.shape[0], 16, dtype=torch.bool).scatter_(1, keep, False)
    tokens = model.encoder.embed(batch["images"]).repeat_interleave(3, 0)
    z = model.encoder.encode(torch.gather(tokens, 1, keep.unsqueeze(-1).expand(-1, -1, 96)))
    torch.testing.assert_close(seen["x"][~masked].view(12, -1, 96), z[:, 1:])  # kept slots: the student
    noise = seen["x"][masked]  # (4*3*12, 96)
    assert 0.009 < float(noise.std()) < 0.011 and abs(float(noise.mean())) < 1e-3


def test_data2vec_teacher_follows_the_student_by_ema():
    model = small_data2vec()
    student, teacher = model.encoder, model.teacher.net
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    before = [p.clone() for p in teacher.parameters()]
    # recipe: paper: fairseq's ramp over the first 100k updates, whatever the budget
    momentum = model.after_step(Clock(0.9, 50_000, "paper", 375_300))
    assert momentum == pytest.approx(0.9998 + 0.5 * (0.99999 - 0.9998))
    for t0, t1, s in zip(before, teacher.parameters(), student.parameters(), strict=True):
        torch.testing.assert_close(t1, momentum * t0 + (1 - momentum) * s)
    assert isinstance(model.teacher, EMATeacher)  # the same teacher code as I-JEPA's target encoder


def test_data2vec_v1_masks_inside_the_encoder_and_regresses_masked_targets():
    cfg = Data2VecV1Config(min_block=4, top_k=3)
    model = Data2VecV1(nano(), cfg).eval()
    images = torch.randn(2, 1, 16, 16)
    batch = {"images": images} | model.masks(2, 0)
    masked = batch["masked"]
    tokens = model.encoder.embed(images, masked=masked, mask_token=model.mask_token)
    plain = model.encoder.embed(images)
    where = masked.nonzero()[:, 1]  # the patch index of each masked token, in tokens[masked]'s order
    torch.testing.assert_close(tokens[masked], model.mask_token[0, 0] + model.encoder.pos_embed[0, where])
    torch.testing.assert_close(tokens[~masked], plain[~masked])
    y = contextual_targets(model.teacher.layer_outputs(images, at="block"), 3, "layer")
    z = model.encoder.patch_tokens(model.encoder.encode(tokens))
    expected = F.smooth_l1_loss(model.head(z[masked]), y[masked], beta=2.0)
    torch.testing.assert_close(model(batch)["loss"], expected)


# --- config and the training loop -----------------------------------------------------------


def test_each_method_brings_its_optimizer_recipe_and_overrides_win():
    mae = build_config({"method": "mae", "backbone": "vit_nano_patch4", **TINY_METHODS["mae"]})
    assert mae.optim.betas == (0.9, 0.95) and mae.optim.lr_batch == 256 and mae.optim.weight_decay == 0.05
    d2v = build_config({"method": "data2vec", **TINY_METHODS["data2vec"]}, ["optim.clip_grad=1.0"])
    assert d2v.optim.clip_grad == 1.0 and d2v.optim.betas == (0.9, 0.95)
    assert build_config().optim.betas == (0.9, 0.999)  # I-JEPA keeps the engine's defaults
    written = to_dict(mae)
    assert "mae" in written and not {"ijepa", "data2vec", "data2vec_v1"} & set(written)


@pytest.mark.parametrize("method", BASELINES)
def test_baselines_train_on_the_engine_and_resume_exactly(tmp_path, tiny, monkeypatch, method):
    cfg = tiny(method, **{"budget.value": 6, "checkpoint_every_s": 0, "log_every": 1})
    straight = train(cfg, tmp_path / "straight")
    assert straight["status"] == "done" and straight["compute"]["flops"] > 0

    train_preempted(cfg, tmp_path / "resumed", monkeypatch, die_at_save=3)

    def records(d):
        records = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
        return [r for r in records if "loss" in r]  # not step 0's health record

    a, b = records(tmp_path / "straight"), records(tmp_path / "resumed")
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, 7))
    for x, y in zip(a, b, strict=True):
        assert x["lr"] == y["lr"] and x["loss"] == pytest.approx(y["loss"], rel=1e-5)
    if method == "mae":  # lr 1.5e-4 per 256 images, batch 16; step s ran at progress (s - 1) / 6
        for r in a:
            assert r["lr"] == pytest.approx(schedules.learning_rate((r["step"] - 1) / 6, cfg.optim) * 16 / 256)
        assert max(r["lr"] for r in a) > 0 and all(r["ema"] is None for r in a)


def test_data2vec_ema_ramps_over_100k_updates_then_holds():
    """recipe: paper: fairseq's absolute schedule (100k of 375,300 updates); recipe: budget: the same
    fraction of any run (26.6 %), each momentum through its time constant scaled to the run's length."""
    model = small_data2vec()
    assert model.after_step(Clock(0.01, 0, "paper", 375_300)) == pytest.approx(0.9998)
    assert model.after_step(Clock(0.02, 200_000, "paper", 375_300)) == pytest.approx(0.99999)  # held after 100k
    # budget: a 94-update run (47 done at progress 0.5) is past 26.6 %: 0.99999 held, tau 100,000 of 375,300
    # updates -> 100,000 x 94 / 375,300 = 25.05 updates -> m = 1 - 1 / 25.05
    assert model.after_step(Clock(0.5, 47, "budget", 375_300)) == pytest.approx(1 - 1 / (100_000 * 94 / 375_300))
    # at 10 % of the same run: 0.9998 + (0.1 / 0.26645) x 0.00019 = 0.99987131, tau 7,771 -> 1.946 updates
    m_paper = 0.9998 + (0.1 / (100_000 / 375_300)) * (0.99999 - 0.9998)
    expected = 1 - 1 / ((1 / (1 - m_paper)) * 94 / 375_300)
    assert model.after_step(Clock(0.1, 9.4, "budget", 375_300)) == pytest.approx(expected)
    whole = Data2Vec(nano(), Data2VecConfig(num_clones=2, decoder_dim=48, decoder_groups=3, ema_steps=None))
    assert whole.after_step(Clock(0.5, 10, "paper", 375_300)) == pytest.approx(0.9998 + 0.5 * (0.99999 - 0.9998))
    v1 = Data2VecV1(nano(), Data2VecV1Config(min_block=4, top_k=3))
    assert v1.after_step(Clock(0.5, 10, "paper", 500_000)) == pytest.approx(0.9998)  # constant
    # budget: 0.9998 is 5,000 of v1's 500,000 updates (1 %); in a 10,000-update run, 100 updates
    assert v1.after_step(Clock(0.5, 5_000, "budget", 500_000)) == pytest.approx(0.99)


def test_evaluated_encoder_is_the_one_each_official_code_evaluates():
    """I-JEPA: the target (EMA) encoder; MAE: its encoder; data2vec 2.0 and v1: the student (fairseq's
    fine-tuning drops the EMA copy; BEiT's fine-tunes `model`). eval.encoder picks the other one."""
    from bench.errors import BenchError
    from bench.train.methods import eval_encoder
    from ijepa.config import IJEPAConfig, MaskConfig
    from ijepa.model import IJEPA

    ijepa = IJEPA(
        nano(cls_token=False), IJEPAConfig(predictor_depth=1, predictor_width=48, mask=MaskConfig(min_keep=0))
    )
    mae, d2v = small_mae(), small_data2vec()
    v1 = Data2VecV1(nano(), Data2VecV1Config(min_block=4, top_k=3))
    assert eval_encoder(ijepa) == ("teacher", ijepa.target.net)
    assert eval_encoder(mae) == ("student", mae.encoder)
    assert eval_encoder(d2v) == ("student", d2v.encoder)
    assert eval_encoder(v1) == ("student", v1.encoder)
    assert eval_encoder(d2v, "teacher") == ("teacher", d2v.teacher.net)
    assert eval_encoder(ijepa, "student") == ("student", ijepa.encoder)
    with pytest.raises(BenchError, match="no teacher encoder"):
        eval_encoder(mae, "teacher")
    with pytest.raises(BenchError, match="no teacher encoder"):
        build_config({"method": "mae", **TINY_METHODS["mae"], "eval": {"encoder": "teacher"}})


# --- recipe details the official code fixes ---------------------------------------------------


@pytest.mark.parametrize("depth, k", [(12, 10), (24, 18), (32, 24), (4, 3)])
def test_data2vec_targets_average_fairseqs_top_k(depth, k):
    from baselines.data2vec import default_top_k

    assert default_top_k(depth) == k


def test_data2vec_init_is_berts_without_residual_rescale():
    """fairseq's init_bert_params: every Linear normal(0, 0.02), no 1/sqrt(2l); [cls] from N(0, 1)."""
    torch.manual_seed(0)
    enc = BACKBONES.get("vit_small_patch16")(img_size=224, in_chans=3, cls_token=True)
    Data2Vec(enc, Data2VecConfig(decoder_dim=384))
    assert float(enc.blocks[-1].mlp.fc2.weight.std()) == pytest.approx(0.02, rel=0.02)
    assert float(enc.cls_token.std()) == pytest.approx(1.0, rel=0.2)


def test_data2vec_v1_cls_has_no_weight_decay_and_others_keep_theirs():
    from bench.train.engine import param_groups

    v1 = Data2VecV1(nano(), Data2VecV1Config(min_block=4, top_k=3))
    decay, no_decay = (g["params"] for g in param_groups(v1))
    assert any(p is v1.encoder.cls_token for p in no_decay)
    assert any(p is v1.mask_token for p in decay)  # BEiT decays the mask token
    mae = small_mae()
    decay, _ = (g["params"] for g in param_groups(mae))
    assert any(p is mae.encoder.cls_token for p in decay)  # MAE's add_weight_decay: only 1-D and biases


@pytest.mark.parametrize(
    "method, crop, interpolation, hflip, jitter",
    [
        ("ijepa", (0.3, 1.0), "bilinear", False, 0.0),
        ("mae", (0.2, 1.0), "bicubic", True, 0.0),
        ("data2vec", (0.2, 1.0), "bicubic", True, 0.0),
        ("data2vec_v1", (0.08, 1.0), "bicubic", True, 0.4),
    ],
)
def test_each_method_augments_as_its_official_code(method, crop, interpolation, hflip, jitter):
    from bench.train.methods import augmentation

    aug = augmentation(build_config({"method": method, **TINY_METHODS[method]}))
    assert (aug.crop_scale, aug.interpolation, aug.hflip, aug.color_jitter) == (crop, interpolation, hflip, jitter)


def test_colour_jitter_applies_to_colour_images_only():
    from bench.data.split import Split
    from bench.data.views import Views
    from core.method import Augmentation

    aug = Augmentation((0.08, 1.0), True, "bicubic", 0.4)
    grey = Split(None, 10, 1, (0.5,), (0.25,), True)
    colour = Split(None, 10, 3, (0.5,) * 3, (0.25,) * 3, True)
    (_, grey_view), (_, colour_view) = (Views.of(s, 16, aug).groups[0] for s in (grey, colour))
    assert grey_view.jitter is None and colour_view.jitter == ((0.6, 1.4), (0.6, 1.4), (0.6, 1.4), None)
    assert grey_view.interpolation == colour_view.interpolation == "bicubic" and colour_view.flip == 0.5
