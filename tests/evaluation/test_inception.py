"""The FID Inception-v3: pytorch-fid's state-dict layout, the FID pools, loading and embedding.

No real weights are available offline: a seeded random network with O(1) activations stands in
for them. A forward pass at 299x299 costs ~6 GFLOP per image, so the tests embed 1-4 images.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from genlab.errors import GenlabError
from genlab.evaluation.features import FASHION_MNIST, Embedding
from genlab.evaluation.inception import (
    WEIGHTS_FILE,
    InceptionFeatureNetwork,
    InceptionV3FID,
    avg_pool_3x3,
    load_inception,
    preprocess,
)

# pytorch-fid's fid_inception_v3() is torchvision's Inception3(num_classes=1008,
# aux_logits=False) with patched Mixed_5b-d, 6b-e, 7b-c forwards (same parameters).
# Entries: 94 conv+bn units (stem 5, Mixed_5b-d 3 x 7, 6a 4, 6b-e 4 x 10, 7a 6, 7b-c 2 x 9),
# 6 each (conv.weight; bn.weight, bias, running_mean, running_var, num_batches_tracked), + fc 2.
NUM_ENTRIES = 94 * 6 + 2
NUM_COUNTERS = 94
# torchvision documents 27,161,264 parameters for inception_v3 (1000 classes, aux logits); the
# aux head has 128*768 + 2*128 + 768*128*5*5 + 2*768 + 768*1000 + 1000 = 3,326,696; 8 more
# classes add 8*2048 + 8.
NUM_PARAMETERS = 27_161_264 - 3_326_696 + 8 * 2048 + 8
SPOT_CHECKS = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_1a_3x3.bn.running_var": (32,),
    "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_5d.branch5x5_2.conv.weight": (64, 48, 5, 5),
    "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
    "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
    "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
    "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
    "Mixed_7b.branch3x3dbl_1.conv.weight": (448, 1280, 1, 1),
    "Mixed_7c.branch3x3_2b.conv.weight": (384, 384, 3, 1),
    "Mixed_7c.branch_pool.bn.num_batches_tracked": (),
    "fc.weight": (1008, 2048),
    "fc.bias": (1008,),
}


def random_fid_network(seed: int = 0) -> InceptionV3FID:
    """Seeded He-normal convs and non-trivial batch-norm statistics: activations stay O(1)."""
    g = torch.Generator().manual_seed(seed)
    model = InceptionV3FID()
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith(("conv.weight", "fc.weight")):
                t.copy_(torch.randn(t.shape, generator=g) * (2 / t[0].numel()) ** 0.5)
            elif name.endswith(("bn.weight", "running_var")):
                t.uniform_(0.5, 1.5, generator=g)
            elif name.endswith(("bn.bias", "running_mean", "fc.bias")):
                t.normal_(0.0, 0.1, generator=g)
    return model.eval()


@pytest.fixture(scope="module")
def model() -> InceptionV3FID:
    return random_fid_network()


@pytest.fixture(scope="module")
def weights(model, tmp_path_factory) -> Path:
    """The random network's state dict as safetensors."""
    path = tmp_path_factory.mktemp("inception") / "fid_inception.safetensors"
    save_file(model.state_dict(), str(path))
    return path


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """(4, 1, 28, 28) float grayscale in [0, 1]."""
    return torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def reference(model, images) -> torch.Tensor:
    """The random network's own pool3 features of `images`: (4, 2048)."""
    with torch.inference_mode():
        return model(preprocess(images))


@pytest.fixture(scope="module")
def net(weights) -> InceptionFeatureNetwork:
    return load_inception(weights)


def test_state_dict_has_pytorch_fid_keys_and_shapes(model):
    state = model.state_dict()
    assert len(state) == NUM_ENTRIES
    assert sum(k.endswith(".num_batches_tracked") for k in state) == NUM_COUNTERS
    assert sum(p.numel() for p in model.parameters()) == NUM_PARAMETERS == 23_850_960
    assert not any(k.startswith("AuxLogits") for k in state)
    for key, shape in SPOT_CHECKS.items():
        assert tuple(state[key].shape) == shape, key
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == NUM_COUNTERS and all(bn.eps == 1e-3 for bn in bns)


@pytest.mark.parametrize("block", ["Mixed_5b", "Mixed_6b", "Mixed_7b"])
def test_average_pools_ignore_the_padding(model, block):
    """On a constant input, a mean over in-image pixels only is constant up to the border."""
    module = getattr(model, block)
    c_in = module.branch1x1.conv.in_channels
    pool_features = module.branch_pool.conv.out_channels
    with torch.inference_mode():
        pooled = module(torch.ones(1, c_in, 5, 5))[:, -pool_features:]  # (1, P, 5, 5)
    assert pooled.abs().amax() > 0.1
    torch.testing.assert_close(pooled, pooled[:, :, 2:3, 2:3].expand_as(pooled))


def test_last_block_max_pools(model):
    block = model.Mixed_7c
    x = torch.randn(1, 2048, 5, 5, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        out = block(x)[:, -192:]  # (1, 192, 5, 5)
        with_max = block.branch_pool(torch.nn.functional.max_pool2d(x, 3, 1, 1))
        with_avg = block.branch_pool(avg_pool_3x3(x))
    torch.testing.assert_close(out, with_max)
    assert not torch.allclose(out, with_avg, atol=1e-3)


def test_preprocess_resizes_repeats_and_scales_to_minus_one_one():
    gray = torch.rand(2, 1, 28, 28)
    x = preprocess(gray)
    assert x.shape == (2, 3, 299, 299) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])
    white = torch.full((1, 3, 8, 8), 255, dtype=torch.uint8)
    torch.testing.assert_close(preprocess(white), torch.ones(1, 3, 299, 299))
    full = torch.rand(1, 3, 299, 299)
    torch.testing.assert_close(preprocess(full), 2 * full - 1)  # 299x299 passes unresized


def test_safetensors_round_trip_reproduces_the_network(model, net, images, reference):
    assert isinstance(net, InceptionFeatureNetwork) and not net.train().training
    assert net.num_features == 2048 and net.class_names == () and "inception" in net.name
    loaded = net.inception.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())
    embedding = net.embed(images, batch_size=3)  # batches of 3 and 1
    assert isinstance(embedding, Embedding)
    assert embedding.features.shape == (4, 2048) and embedding.logits.shape == (4, 1008)
    assert embedding.features.dtype == torch.float32 and embedding.features.device.type == "cpu"
    assert torch.isfinite(embedding.features).all() and torch.isfinite(embedding.logits).all()
    assert embedding.features.std(0).mean() > 1e-3  # the images are told apart
    torch.testing.assert_close(embedding.features, reference, rtol=1e-4, atol=1e-5)
    with torch.inference_mode():
        torch.testing.assert_close(embedding.logits, model.fc(reference), rtol=1e-4, atol=1e-5)


def test_pth_state_dict_loads_the_same_even_without_batch_norm_counters(
    model, images, reference, tmp_path
):
    """Files written before torch had num_batches_tracked lack the 94 counters."""
    path = tmp_path / WEIGHTS_FILE
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, path)
    net = load_inception(path)
    loaded = net.inception.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    embedding = net.embed(images[:2])
    torch.testing.assert_close(embedding.features, reference[:2], rtol=1e-4, atol=1e-5)


def test_inputs_of_any_size_uint8_float_gray_and_rgb(net):
    gray = torch.randint(
        0, 256, (1, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(3)
    )
    from_uint8 = net.embed(gray).features
    torch.testing.assert_close(net.embed(gray.float() / 255).features, from_uint8)
    torch.testing.assert_close(net.embed(gray.expand(-1, 3, -1, -1)).features, from_uint8)
    for shape in [(1, 1, 64, 64), (1, 3, 64, 64)]:  # RGB 28 px: the expanded gray above
        features = net.embed(torch.rand(shape)).features
        assert features.shape == (1, 2048) and torch.isfinite(features).all()
        assert not torch.allclose(features, from_uint8)
    assert net.embed(torch.rand(0, 3, 28, 28)).features.shape == (0, 2048)
    with pytest.raises(GenlabError, match=r"\(N, 1 or 3, H, W\)"):
        net.embed(torch.rand(1, 2, 28, 28))


def test_missing_file_names_the_expected_weights(tmp_path):
    with pytest.raises(GenlabError, match=f"missing; expected pytorch-fid's {WEIGHTS_FILE}"):
        load_inception(tmp_path / WEIGHTS_FILE)


def test_classifier_weights_are_refused_with_counts():
    missing = NUM_ENTRIES - NUM_COUNTERS - 2  # the counters and the classifier fc are optional
    with pytest.raises(GenlabError, match=rf"{missing} missing keys \(Conv2d_1a_3x3\..*unexpected"):
        load_inception(FASHION_MNIST)


def test_other_shapes_are_refused(model, tmp_path):
    """torchvision's ImageNet Inception has 1000 classes, not the graph's 1008."""
    state = dict(model.state_dict())
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    path = tmp_path / "imagenet.pth"
    torch.save(state, path)
    with pytest.raises(GenlabError, match=r"0 missing keys, 0 unexpected, 2 with other shapes"):
        load_inception(path)


@pytest.mark.parametrize(
    "name, data",
    [
        ("broken.pth", b"not weights"),
        ("short.pt", b"junk"),
        ("empty.pth", b""),
        ("broken.safetensors", b"not weights"),
        ("weights.bin", b"not weights"),
    ],
)
def test_unreadable_files_are_refused(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(GenlabError, match=name):
        load_inception(path)


def test_pickled_objects_are_not_unpickled(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"fc.weight": Path("anything")}, path)
    with pytest.raises(GenlabError, match="pickled objects other than tensors"):
        load_inception(path)
