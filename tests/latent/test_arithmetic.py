import pytest
import torch

from genlab.data import ImageData
from genlab.errors import GenlabError
from genlab.latent import (
    apply_attribute,
    attribute_vector,
    attribute_vector_from_latents,
    class_arithmetic,
    class_index,
)


def test_attribute_vector_is_difference_of_means(model, images):
    a, b = images[:5], images[5:]
    v = attribute_vector(model, a, b, batch_size=2)  # batches of 2 exercise the batching
    # hand computation: z = W x + c is affine, so mean(z_a) - mean(z_b) = W (mean x_a - mean x_b)
    w = model.enc.weight.detach()
    expected = w @ (a.mean(0).flatten() - b.mean(0).flatten())
    assert v.shape == (model.latent_dim,)
    torch.testing.assert_close(v, expected, rtol=1e-5, atol=1e-6)


def test_attribute_vector_accepts_uint8(model, images):
    u8 = (images * 255).round().to(torch.uint8)
    v_u8 = attribute_vector(model, u8[:4], u8[4:])
    v_float = attribute_vector(model, u8[:4].float() / 255, u8[4:].float() / 255)
    torch.testing.assert_close(v_u8, v_float)


def test_attribute_vector_from_latents():
    z_a = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    z_b = torch.tensor([[0.0, 1.0], [0.0, 3.0], [0.0, 2.0]])
    torch.testing.assert_close(attribute_vector_from_latents(z_a, z_b), torch.tensor([2.0, 1.0]))
    with pytest.raises(GenlabError):
        attribute_vector_from_latents(z_a, torch.zeros(2, 3))


def test_decoder_only_model_gets_a_clear_error(decoder_only, images):
    with pytest.raises(GenlabError, match="no encoder"):
        attribute_vector(decoder_only, images[:2], images[2:4])


def test_apply_attribute_strength_zero_is_reconstruction(model, images):
    v = torch.ones(model.latent_dim)
    out = apply_attribute(model, images[:3], v, strengths=(0.0, 0.5, 1.0))
    assert out.shape == (3, 3, 1, 6, 6)
    with torch.no_grad():
        z = model.encode(images[:3])
        torch.testing.assert_close(out[:, 0], model.decode(z))
        torch.testing.assert_close(out[:, 2], model.decode(z + v))
    assert not torch.allclose(out[:, 0], out[:, 2])


def _labelled_data(n_per_class: int = 5) -> ImageData:
    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (3 * n_per_class, 1, 6, 6), generator=g, dtype=torch.uint8)
    labels = torch.arange(3).repeat_interleave(n_per_class)
    return ImageData(images, labels, ("T-shirt/top", "Sneaker", "Ankle boot"))


def test_class_index_is_case_insensitive_and_lists_names_on_error():
    names = ("T-shirt/top", "Sneaker", "Ankle boot")
    assert class_index(names, "sneaker") == 1
    assert class_index(names, "ANKLE-BOOT") == 2
    with pytest.raises(GenlabError, match="'Sneaker'.*'Ankle boot'"):
        class_index(names, "sandal")


def test_class_arithmetic_rows_and_seeding(model):
    data = _labelled_data()
    strengths = (0.0, 1.0)
    out = class_arithmetic(
        model,
        data,
        "sneaker",
        "ankle boot",
        n=3,
        strengths=strengths,
        generator=torch.Generator().manual_seed(0),
    )
    assert out.shape == (3, len(strengths) + 1, 1, 6, 6)
    originals = data.images[data.labels == 1].float() / 255
    for row in out:  # the first column is a real sneaker, the second its reconstruction
        assert any(torch.equal(row[0], img) for img in originals)
        with torch.no_grad():
            torch.testing.assert_close(row[1], model.decode(model.encode(row[0][None]))[0])
    # the last column moves by v = mean(boots) - mean(sneakers)
    v = attribute_vector(model, data.images[data.labels == 2], data.images[data.labels == 1])
    with torch.no_grad():
        torch.testing.assert_close(out[:, 2], model.decode(model.encode(out[:, 0]) + v))
    again = class_arithmetic(
        model,
        data,
        "Sneaker",
        "Ankle boot",
        n=3,
        strengths=strengths,
        generator=torch.Generator().manual_seed(0),
    )
    torch.testing.assert_close(out, again)
    with pytest.raises(GenlabError, match="unknown class 'sandal'"):
        class_arithmetic(model, data, "sandal", "sneaker")


def test_class_arithmetic_caps_rows_at_class_size(model):
    out = class_arithmetic(model, _labelled_data(n_per_class=2), "sneaker", "ankle boot", n=6)
    assert out.shape[0] == 2


def test_class_arithmetic_conditions_a_conditional_model_on_labels(conditional_model):
    data = _labelled_data()
    out = class_arithmetic(conditional_model, data, "sneaker", "ankle boot", n=2, strengths=(0.0,))
    with torch.no_grad():  # strength 0 decodes with the source class: the plain reconstruction
        y = torch.ones(2, dtype=torch.long)
        rec = conditional_model.decode(conditional_model.encode(out[:, 0], y), y)
    torch.testing.assert_close(out[:, 1], rec)
