"""CycleGAN: shapes and ranges, the PatchGAN's receptive field, the losses, the image pool."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn

from genlab.errors import GenlabError
from genlab.families import FAMILIES
from genlab.models.cyclegan import (
    CycleGAN,
    CycleGANConfig,
    ImagePool,
    PatchDiscriminator,
    d_loss_lsgan,
    g_loss_lsgan,
    l1_pm1,
    receptive_field,
)
from genlab.runs import build_model, load_weights, save_weights

TINY = CycleGANConfig(widths=(4, 8), n_res_blocks=1, d_widths=(4, 8))


def make(config: CycleGANConfig = TINY, seed: int = 0) -> CycleGAN:
    torch.manual_seed(seed)
    return CycleGAN(config)


@pytest.mark.parametrize("channels, size", [(1, 28), (3, 32), (3, 64)])
def test_translations_keep_the_shape_and_lie_in_0_1(channels, size):
    config = dataclasses.replace(TINY, channels=channels, image_size=size, widths=(4, 8, 8))
    model = make(config)
    x = torch.rand(3, channels, size, size)
    for direction in ("ab", "ba"):
        y = model.translate(x, direction)
        assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    logits = model.D_a(x)  # one logit per patch
    assert logits.shape[:2] == (3, 1) and logits.shape[2] == logits.shape[3] > 1


def test_default_config_shapes_at_28_px():
    model = make(CycleGANConfig())
    x = torch.rand(2, 1, 28, 28)
    assert model.translate(x).shape == x.shape
    assert model.D_b(x).shape == (2, 1, 5, 5)  # 28 -> 14 -> 7 -> 6 -> 5 patches


def test_translate_treats_each_image_alone_and_refuses_bad_input():
    model = make()
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(model.translate(x, "ba")[:1], model.translate(x[:1], "ba"))
    with pytest.raises(GenlabError, match="direction"):
        model.translate(x, "ac")
    with pytest.raises(GenlabError, match=r"\(B, 1, 28, 28\)"):
        model.translate(torch.rand(2, 3, 28, 28))


@pytest.mark.parametrize("d_widths, expected", [((64, 128, 256, 512), 70), ((16, 32, 64), 34)])
def test_receptive_field_matches_the_gradient_support_of_one_patch_logit(d_widths, expected):
    assert receptive_field(d_widths) == expected
    config = dataclasses.replace(TINY, image_size=96, d_widths=tuple(w // 8 for w in d_widths))
    torch.manual_seed(0)
    D = PatchDiscriminator(config)
    for i, layer in enumerate(D.net):  # instance norm would couple every pixel
        if isinstance(layer, nn.InstanceNorm2d):
            D.net[i] = nn.Identity()
    x = torch.rand(1, 1, 96, 96, requires_grad=True)
    logits = D(x)  # (1, 1, h, w)
    h, w = logits.shape[2:]
    logits[0, 0, h // 2, w // 2].backward()
    rows, cols = x.grad[0, 0].abs().gt(0).nonzero().unbind(1)
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (expected, expected)


def test_lsgan_losses_by_hand():
    real, fake = torch.tensor([1.0, 0.5]), torch.tensor([0.0, 1.0])
    assert d_loss_lsgan(real, fake).item() == pytest.approx((0 + 0.25) / 2 + (0 + 1) / 2)
    assert g_loss_lsgan(fake).item() == pytest.approx((1 + 0) / 2)
    assert l1_pm1(torch.zeros(2, 2), torch.full((2, 2), 0.25)).item() == pytest.approx(0.5)


@pytest.mark.parametrize("loss", ["lsgan", "ns"])
def test_generator_loss_parts_add_up(loss):
    model = make(dataclasses.replace(TINY, loss=loss))
    x_a, x_b = torch.rand(2, 1, 28, 28), torch.rand(3, 1, 28, 28)
    out = model.g_loss(x_a, x_b)
    logs = out.logs
    assert set(logs) == {"loss_g", "gan_ab", "gan_ba", "cycle", "identity"}
    total = logs["gan_ab"] + logs["gan_ba"] + 10 * logs["cycle"] + 5 * logs["identity"]
    torch.testing.assert_close(out.loss.detach(), total)
    assert out.fake_a.shape == x_b.shape and out.fake_b.shape == x_a.shape
    assert not out.fake_a.requires_grad
    out.loss.backward()
    assert all(p.grad is not None for G in model.generators for p in G.parameters())


def test_identity_generators_have_zero_cycle_and_identity_loss():
    model = make()
    model.G_ab, model.G_ba = nn.Identity(), nn.Identity()
    out = model.g_loss(torch.rand(2, 1, 28, 28), torch.rand(2, 1, 28, 28))
    assert out.logs["cycle"].item() == 0 and out.logs["identity"].item() == 0
    no_identity = make(dataclasses.replace(TINY, lambda_identity=0.0))
    x = torch.rand(2, 1, 28, 28)
    out = no_identity.g_loss(x, x)
    assert out.logs["identity"].item() == 0
    torch.testing.assert_close(
        out.loss.detach(), out.logs["gan_ab"] + out.logs["gan_ba"] + 10 * out.logs["cycle"]
    )


def test_discriminator_loss_is_half_of_each_d_loss():
    model = make()
    x_a, x_b = torch.rand(2, 1, 28, 28), torch.rand(2, 1, 28, 28)
    fake_a, fake_b = torch.rand(2, 1, 28, 28), torch.rand(2, 1, 28, 28)
    loss, logs = model.d_loss(x_a, x_b, fake_a, fake_b)
    d_a = 0.5 * d_loss_lsgan(model.D_a(x_a), model.D_a(fake_a))
    torch.testing.assert_close(logs["d_a"], d_a.detach())
    torch.testing.assert_close(loss.detach(), logs["d_a"] + logs["d_b"])
    loss.backward()
    assert all(p.grad is None for G in model.generators for p in G.parameters())
    # Without fakes, d_loss translates the real batches itself.
    _, logs = model.d_loss(x_a, x_b)
    with torch.no_grad():
        d_b = 0.5 * d_loss_lsgan(model.D_b(x_b), model.D_b(model.G_ab(x_a)))
    torch.testing.assert_close(logs["d_b"], d_b)


def _ids(x: torch.Tensor) -> list[int]:
    return sorted(int(v) for v in x[:, 0, 0, 0])


def test_image_pool_fills_then_swaps_without_losing_or_inventing_images():
    pool = ImagePool(4, (1, 2, 2))
    first = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    torch.testing.assert_close(pool.query(first), first)  # filling: returned as given
    assert pool.count == 4 and _ids(pool.images) == [0, 1, 2, 3]
    torch.manual_seed(1)
    new = torch.arange(4.0, 10.0).view(6, 1, 1, 1).expand(6, 1, 2, 2)
    before = _ids(pool.images)
    out = pool.query(new)
    # Every image, old or new, is either returned or kept, exactly once.
    assert sorted(_ids(out) + _ids(pool.images)) == sorted(before + _ids(new))
    assert _ids(out) != _ids(new)  # with this seed some old images came back
    assert torch.equal(ImagePool(0, (1, 2, 2)).query(new), new)


def test_image_pool_state_round_trip_reproduces_queries():
    torch.manual_seed(0)
    pool = ImagePool(3, (1, 2, 2))
    pool.query(torch.rand(2, 1, 2, 2))
    copy = ImagePool(3, (1, 2, 2))
    copy.load_state_dict({k: v.clone() for k, v in pool.state_dict().items()})
    x = torch.rand(5, 1, 2, 2)
    rng = torch.get_rng_state()
    a = pool.query(x)
    torch.set_rng_state(rng)
    torch.testing.assert_close(copy.query(x), a)
    torch.testing.assert_close(copy.images, pool.images)


def test_registered_and_rebuilt_from_json_with_the_same_weights(tmp_path):
    assert (FAMILIES["cyclegan"].config, FAMILIES["cyclegan"].model) == (CycleGANConfig, CycleGAN)
    model = make()
    config = {"family": "cyclegan", "model": json.loads(json.dumps(dataclasses.asdict(TINY)))}
    save_weights(tmp_path / "w.safetensors", model.state_dict())
    rebuilt = build_model(config)
    assert rebuilt.config == TINY
    rebuilt.load_state_dict(load_weights(tmp_path / "w.safetensors"))
    x = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(rebuilt.translate(x, "ba"), model.translate(x, "ba"))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"loss": "wgan"}, "loss must be"),
        ({"image_size": 30, "widths": (4, 8, 8)}, "divisible by 4"),
        ({"lambda_cycle": -1.0}, ">= 0"),
        ({"d_widths": ()}, "d_widths"),
    ],
)
def test_bad_configs_are_refused(change, message):
    with pytest.raises(GenlabError, match=message):
        CycleGAN(dataclasses.replace(TINY, **change))
