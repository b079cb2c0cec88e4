import pytest
import torch
from helpers import block_network

from genlab.errors import GenlabError
from genlab.text import (
    CAPTION_TEMPLATES,
    HELD_OUT_PROMPTS,
    TextEncoder,
    captions,
    class_phrases,
    load_text_encoder,
    minilm_dir,
)

# Exactly as genlab.data.load_data(DataSpec("fashion-mnist"), "train").class_names gives them.
FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot")  # fmt: skip


@pytest.fixture(scope="module")
def enc():
    return load_text_encoder()


def test_loads_without_network(monkeypatch):
    attempts = block_network(monkeypatch)
    encoder = TextEncoder()  # a fresh load, not the cached one
    assert encoder.encode(["a bag"]).states.shape == (1, 4, 384)  # [CLS] a bag [SEP]
    assert attempts == []
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_cached_once_per_process():
    assert load_text_encoder() is load_text_encoder()
    assert (minilm_dir() / "model.safetensors").is_file()


def test_encode_shapes_and_mask(enc):
    prompts = ["a bag", "a photo of a pair of ankle boots on a plain background", ""]
    states, mask = enc.encode(prompts)
    assert states.dtype == torch.float32 and mask.dtype == torch.bool
    assert states.shape == (3, mask.shape[1], enc.dim) and enc.dim == 384
    lengths = mask.sum(1).tolist()
    assert lengths[0] == 4 and lengths[2] == 2 and max(lengths) == mask.shape[1]  # longest
    assert mask[:, 0].all() and not mask[0, 4:].any()  # padding on the right
    assert torch.isfinite(states).all()
    # Padding does not change a prompt's real token states (the mask reaches the attention).
    alone = enc.encode(["a bag"]).states
    torch.testing.assert_close(states[0, :4], alone[0], atol=1e-5, rtol=1e-5)
    long = enc.encode([" ".join(["shoe"] * 100)], max_length=16)
    assert long.states.shape == (1, 16, 384) and long.mask.all()


def test_encode_rejects_bad_prompts(enc):
    for bad in ("a bag", [], [1, 2]):
        with pytest.raises(GenlabError):
            enc.encode(bad)


@pytest.mark.kernels
def test_embed_matches_sentence_transformers(enc):
    st = pytest.importorskip("sentence_transformers")
    sentences = ["a photo of a sandal", "boots for the ankle", "A small grayscale image of a bag!"]
    ref = st.SentenceTransformer(str(minilm_dir()), device="cpu").encode(
        sentences, convert_to_tensor=True
    )
    ours = enc.embed(sentences)
    assert ours.shape == (3, 384)
    torch.testing.assert_close(ours, ref.cpu().float(), atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.norm(dim=1), torch.ones(3))


def test_paraphrases_are_closer_than_other_garments(enc):
    boots, paraphrase, tshirt = enc.embed(
        ["a pair of ankle boots", "boots for the ankle", "a t-shirt"]
    )
    assert boots @ paraphrase > boots @ tshirt


def test_held_out_prompts_are_nearest_their_own_class(enc):
    """What the text-to-image model relies on: unseen wordings land on the right class."""
    assert set(HELD_OUT_PROMPTS) == set(FASHION)
    caps = captions(FASHION)
    seen = {c for cs in caps for c in cs}
    class_means = torch.stack([enc.embed(cs).mean(0) for cs in caps])  # (10, 384)
    class_means = torch.nn.functional.normalize(class_means, dim=1)
    for name, prompts in HELD_OUT_PROMPTS.items():
        assert len(prompts) >= 2 and not seen & set(prompts), name  # really held out
        nearest = (enc.embed(prompts) @ class_means.T).argmax(1)  # cosine: unit vectors
        assert [FASHION[i] for i in nearest] == [name] * len(prompts), prompts


def test_captions_deterministic_and_plenty():
    assert len(CAPTION_TEMPLATES) >= 12 and len(set(CAPTION_TEMPLATES)) == len(CAPTION_TEMPLATES)
    caps = captions(FASHION)
    assert caps == captions(FASHION)
    assert len(caps) == 10
    for cs in caps:
        assert len(cs) >= 12 and len(set(cs)) == len(cs)
    assert "a photo of a t-shirt" in caps[0] and "a pair of ankle boots" in caps[9]
    assert captions(["Bag", "golden_retriever"])[1][0] == "a golden retriever"


def test_class_phrases_fallback():
    assert class_phrases("Ankle boot")[:2] == ("an ankle boot", "a pair of ankle boots")
    assert class_phrases("Golden_Retriever") == ("a golden retriever",)
    assert class_phrases("apple") == ("an apple",)
    with pytest.raises(GenlabError):
        class_phrases("__")
