import pytest
import torch

from bench.errors import BenchError
from core.vit import BACKBONES, count_params, sincos_pos_embed
from ijepa.model import Predictor

# Trainable encoder parameters from shared/reference/ijepa.md (no [cls], fixed pos-embed).
REFERENCE = {
    "vit_base_patch16": (224, 85.6e6),
    "vit_large_patch16": (224, 303.1e6),
    "vit_huge_patch14": (224, 630.4e6),
    "vit_giant_patch16": (224, 1011.1e6),
}


@pytest.mark.parametrize("name", REFERENCE)
def test_parameter_counts_match_the_paper(name):
    size, expected = REFERENCE[name]
    with torch.device("meta"):
        model = BACKBONES.get(name)(img_size=size)
    assert abs(count_params(model) - expected) < 0.05e6
    assert not any(b is model.pos_embed for b in model.parameters())  # fixed, not trained


def test_predictor_parameter_count_vit_h():
    with torch.device("meta"):
        pred = Predictor((16, 16), 1280, 384, 12, 16)
    assert abs(count_params(pred) - 22.3e6) < 0.05e6


@pytest.mark.parametrize("name", [n for n in BACKBONES.names() if n.endswith("patch4")])
def test_small_image_backbones_run_on_kept_tokens(name):
    model = BACKBONES.get(name)(img_size=28, in_chans=1)
    x = torch.randn(2, 1, 28, 28)
    full = model(x)
    assert full.shape == (2, 49, model.embed_dim)
    keep = torch.tensor([[0, 5, 48], [1, 2, 3]])
    assert model(x, keep=keep).shape == (2, 3, model.embed_dim)


def test_kept_tokens_see_only_themselves():
    """With one kept token the output can't depend on the other patches."""
    model = BACKBONES.get("vit_nano_patch4")(img_size=16, in_chans=1).eval()
    x = torch.randn(1, 1, 16, 16)
    y = x.clone()
    y[..., 8:, 8:] = 0  # patch 15 (bottom-right) changes, patch 0 does not
    keep = torch.tensor([[0]])
    torch.testing.assert_close(model(x, keep=keep), model(y, keep=keep))


def test_cls_token_option():
    model = BACKBONES.get("vit_nano_patch4")(img_size=16, in_chans=1, cls_token=True)
    out = model(torch.randn(2, 1, 16, 16))
    assert out.shape == (2, 17, 96)
    assert model.patch_tokens(out).shape == (2, 16, 96)


def test_sincos_embedding_is_fixed_and_distinct():
    pe = sincos_pos_embed((7, 7), 64)[0]
    assert pe.shape == (49, 64)
    assert torch.cdist(pe, pe).add(torch.eye(49) * 1e3).min() > 0.1  # every position distinct
    # half of the channels follow the row, half the column: a row shift leaves the column half alone
    same_col = pe.view(7, 7, 64)[0, 3] - pe.view(7, 7, 64)[4, 3]
    assert (same_col.abs() < 1e-6).sum() >= 16


def test_unknown_backbone_lists_valid_ones():
    with pytest.raises(BenchError, match="vit_base_patch16"):
        BACKBONES.get("vit_base_patch32")
