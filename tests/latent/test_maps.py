import pytest
import torch
from PIL import Image

from genlab.data import ImageData
from genlab.errors import GenlabError
from genlab.images import read_png_metadata
from genlab.latent import decoded_manifold, embed, plot_latent_map, project_2d


def test_embed_matches_encode_in_any_batch_size(model, images):
    with torch.no_grad():
        expected = model.encode(images)
    torch.testing.assert_close(embed(model, images, batch_size=3), expected)
    u8 = (images * 255).round().to(torch.uint8)
    data = ImageData(u8, torch.zeros(8, dtype=torch.long), ("a",))
    torch.testing.assert_close(embed(model, data), embed(model, u8.float() / 255))


def test_embed_restores_training_mode(model, images):
    model.train()
    embed(model, images)
    assert model.training


def test_project_2d_is_identity_for_2d():
    z = torch.randn(10, 2)
    coords, method = project_2d(z)
    assert method == "identity"
    torch.testing.assert_close(coords, z)


def test_pca_recovers_top_variance_direction():
    g = torch.Generator().manual_seed(0)
    d = 6
    u = torch.randn(d, generator=g)
    u = u / u.norm()
    u = u * torch.sign(u[u.abs().argmax()])  # the sign convention: largest loading positive
    # large variance along u, small isotropic noise, an offset that PCA must remove
    z = 5.0 * torch.randn(500, 1, generator=g) * u + 0.1 * torch.randn(500, d, generator=g) + 3.0
    coords, method = project_2d(z)
    assert method == "pca" and coords.shape == (500, 2)
    zc = z - z.mean(0)
    # the first coordinate is the projection on u, with u's sign
    corr = torch.corrcoef(torch.stack([coords[:, 0], zc @ u]))[0, 1]
    assert corr > 0.999
    assert coords[:, 0].var() > 100 * coords[:, 1].var()
    torch.testing.assert_close(coords.mean(0), torch.zeros(2), atol=1e-4, rtol=0)


def test_pca_sign_is_deterministic():
    z = torch.randn(50, 5, generator=torch.Generator().manual_seed(1))
    a, _ = project_2d(z)
    b, _ = project_2d(z * 1.0)
    torch.testing.assert_close(a, b)
    # flipping the data flips the coordinates only through the data, not through the SVD's sign
    c, _ = project_2d(-z)
    torch.testing.assert_close(c.abs(), a.abs(), rtol=1e-4, atol=1e-5)


def test_plot_latent_map_writes_png_with_metadata(tmp_path):
    g = torch.Generator().manual_seed(0)
    coords = torch.randn(60, 2, generator=g)
    labels = torch.randint(-1, 3, (60,), generator=g)
    path = plot_latent_map(
        coords,
        labels,
        ("a", "b", "c"),
        tmp_path / "sub" / "map.png",
        title="latents",
        metadata={"command": "genlab latent map", "seed": "0"},
    )
    assert path == tmp_path / "sub" / "map.png"
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 100
    meta = read_png_metadata(path)
    assert meta["command"] == "genlab latent map" and meta["seed"] == "0"
    assert [p.name for p in path.parent.iterdir()] == ["map.png"]  # no temporary file left


def test_plot_latent_map_rejects_wrong_shapes(tmp_path):
    with pytest.raises(GenlabError):
        plot_latent_map(torch.zeros(5, 3), None, (), tmp_path / "x.png")
    with pytest.raises(GenlabError):
        plot_latent_map(torch.zeros(5, 2), torch.zeros(4), (), tmp_path / "x.png")


def test_decoded_manifold_grid_order(make_model):
    model = make_model(latent_dim=2)
    out = decoded_manifold(model, (-2.0, 2.0), n=3)
    assert out.shape == (9, 1, 6, 6)
    with torch.no_grad():
        top_left = model.decode(torch.tensor([[-2.0, 2.0]]))[0]
        bottom_right = model.decode(torch.tensor([[2.0, -2.0]]))[0]
    torch.testing.assert_close(out[0], top_left)
    torch.testing.assert_close(out[-1], bottom_right)


def test_decoded_manifold_needs_2d_latents(model, decoder_only):
    with pytest.raises(GenlabError, match="2-D latent"):
        decoded_manifold(model)  # states latent_dim = 4
    with pytest.raises(GenlabError, match="2-D latent"):
        decoded_manifold(decoder_only)  # 3-D latents, size not stated: the decoder rejects 2-D


def test_embed_gives_a_conditional_model_the_data_labels(conditional_model, images):
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    u8 = (images * 255).round().to(torch.uint8)
    z = embed(conditional_model, ImageData(u8, labels, ("a", "b", "c")))
    with torch.no_grad():
        expected = conditional_model.encode(u8.float() / 255, labels)
    torch.testing.assert_close(z, expected)
