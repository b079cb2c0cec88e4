import math

import pytest
import torch

from genlab.errors import GenlabError
from genlab.latent import interpolate, latent_walk, lerp, morph_strip, slerp


def _pair(b: int = 5, d: int = 7, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)


@pytest.mark.parametrize("fn", [lerp, slerp])
def test_endpoints_equal_inputs(fn):
    z0, z1 = _pair()
    path = fn(z0, z1, torch.linspace(0, 1, 6))
    assert path.shape == (5, 6, 7)
    torch.testing.assert_close(path[:, 0], z0)
    torch.testing.assert_close(path[:, -1], z1)


def test_lerp_midpoint_is_mean_and_scalar_t():
    z0, z1 = _pair()
    torch.testing.assert_close(lerp(z0, z1, 0.5), (z0 + z1) / 2)
    assert lerp(z0[0], z1[0], torch.linspace(0, 1, 3)).shape == (3, 7)


def test_slerp_stays_on_sphere_for_equal_norms():
    z0, z1 = _pair(d=16)
    z0 = z0 / z0.norm(dim=1, keepdim=True) * 4.0
    z1 = z1 / z1.norm(dim=1, keepdim=True) * 4.0
    path = slerp(z0, z1, torch.linspace(0, 1, 11))  # (B, T, D)
    torch.testing.assert_close(path.norm(dim=-1), torch.full((5, 11), 4.0))
    # lerp cuts through the ball: its midpoint is strictly inside
    assert (lerp(z0, z1, 0.5).norm(dim=-1) < 4.0 - 1e-3).all()


def test_slerp_moves_at_constant_angular_speed():
    z0 = torch.tensor([1.0, 0.0])
    z1 = torch.tensor([0.0, 1.0])
    t = torch.linspace(0, 1, 5)
    path = slerp(z0, z1, t)  # (T, 2)
    angles = torch.atan2(path[:, 1], path[:, 0])
    torch.testing.assert_close(angles, t * math.pi / 2)


def test_slerp_nearly_parallel_and_antiparallel_are_finite():
    z0 = torch.tensor([[1.0, 2.0, 3.0]])
    t = torch.linspace(0, 1, 9)
    for z1 in (z0 + 1e-7, z0.clone(), -z0, torch.zeros_like(z0)):
        path = slerp(z0, z1, t)
        assert torch.isfinite(path).all()
        torch.testing.assert_close(path[:, 0], z0)
        torch.testing.assert_close(path[:, -1], z1)
    # identical vectors: the path stays put
    torch.testing.assert_close(slerp(z0, z0.clone(), t), z0[:, None].expand(1, 9, 3))


def test_interpolate_shapes_and_endpoints(model, images):
    x0, x1 = images[:3], images[3:6]
    out = interpolate(model, x0, x1, steps=5, method="slerp")
    assert out.shape == (3, 5, 1, 6, 6)
    with torch.no_grad():
        rec0, rec1 = model.decode(model.encode(x0)), model.decode(model.encode(x1))
    torch.testing.assert_close(out[:, 0], rec0)
    torch.testing.assert_close(out[:, -1], rec1)
    assert out.min() >= 0 and out.max() <= 1


def test_interpolate_lerp_midpoint_decodes_mean_latent(model, images):
    x0, x1 = images[:2], images[2:4]
    out = interpolate(model, x0, x1, steps=3, method="lerp")
    with torch.no_grad():
        mid = model.decode((model.encode(x0) + model.encode(x1)) / 2)
    torch.testing.assert_close(out[:, 1], mid)


def test_interpolate_rejects_bad_arguments(model, images):
    with pytest.raises(GenlabError, match="method"):
        interpolate(model, images[:1], images[1:2], method="cubic")
    with pytest.raises(GenlabError, match="steps"):
        interpolate(model, images[:1], images[1:2], steps=1)


def test_morph_strip_has_real_images_at_both_ends(model, images):
    strip = morph_strip(model, images[0], images[1], steps=4)
    assert strip.shape == (6, 1, 6, 6)
    torch.testing.assert_close(strip[0], images[0])
    torch.testing.assert_close(strip[-1], images[1])
    with torch.no_grad():
        torch.testing.assert_close(strip[1], model.decode(model.encode(images[:1]))[0])


def test_latent_walk_varies_one_dim_per_row(decoder_only):
    z = torch.tensor([0.5, -1.0, 2.0])
    std = torch.tensor([1.0, 2.0, 0.5])
    out = latent_walk(decoder_only, z, dims=[0, 2], span=2.0, steps=5, std=std)
    assert out.shape == (2, 5, 1, 4, 4)
    with torch.no_grad():
        centre = decoder_only.decode(z[None])[0]
        row2_end = decoder_only.decode(torch.tensor([[0.5, -1.0, 2.0 + 2.0 * 0.5]]))[0]
    torch.testing.assert_close(out[0, 2], centre)  # odd steps: the middle is z itself
    torch.testing.assert_close(out[1, 2], centre)
    torch.testing.assert_close(out[1, -1], row2_end)
    assert not torch.allclose(out[0, 0], out[0, -1])
    with pytest.raises(GenlabError, match="dims"):
        latent_walk(decoder_only, z, dims=[3])
