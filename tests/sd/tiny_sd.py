"""A tiny Stable Diffusion, built here from random weights, in both layouts users have on disk.

`build_folder` writes a diffusers folder (UNet2DConditionModel, AutoencoderKL, CLIPTextModel,
a CLIP BPE tokenizer over the 256 byte symbols, SD 1.5's PNDM scheduler config), in a few
seconds. `ldm_state_dict` renames its weights into the original single-file (LDM) layout, the
inverse of the conversion diffusers' `from_single_file` applies, so loading the file back
through diffusers must give exactly the same pictures as the folder.
"""

from __future__ import annotations

from pathlib import Path

import torch

# SD 1.5's scheduler (scheduler/scheduler_config.json of the published model).
SD15_SCHEDULER = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    num_train_timesteps=1000,
    set_alpha_to_one=False,
    skip_prk_steps=True,
    steps_offset=1,
    prediction_type="epsilon",
)
LAYERS = 1  # resnets per UNet down block (SD 1.5 has 2)
MERGES = [("c", "a"), ("ca", "t</w>"), ("d", "o"), ("do", "g</w>")]  # "cat", "dog": one token


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins for bytes that byte-level BPE (GPT-2, CLIP) uses."""
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    extra = iter(range(256, 512))
    return [chr(b if b in keep else next(extra)) for b in range(256)]


def tokenizer():
    from transformers import CLIPTokenizer

    vocab: dict[str, int] = {}
    for s in _byte_symbols():
        vocab[s] = len(vocab)
    for s in _byte_symbols():
        vocab[s + "</w>"] = len(vocab)
    merges = MERGES
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def components(in_channels: int = 4, seed: int = 0):
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    tok = tokenizer()
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tok), hidden_size=32, intermediate_size=37, num_attention_heads=4,
            num_hidden_layers=2, max_position_embeddings=77, projection_dim=32,
            bos_token_id=tok.convert_tokens_to_ids("<|startoftext|>"), eos_token_id=eos,
            pad_token_id=eos,
        )
    )  # fmt: skip
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=in_channels, out_channels=4, layers_per_block=LAYERS,
        block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
        attention_head_dim=8, norm_num_groups=8,
    )  # fmt: skip
    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(16, 32), latent_channels=4, layers_per_block=1, norm_num_groups=8,
        sample_size=16,
    )  # fmt: skip
    # Random weights give near-constant pictures; larger output weights make guidance, seeds and
    # prompts visibly matter, so the tests can tell pictures apart.
    with torch.no_grad():
        for p in unet.conv_out.parameters():
            p.mul_(50.0)
    return dict(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tok,
        scheduler=PNDMScheduler(**SD15_SCHEDULER),
    )  # fmt: skip


def safety_checker(flag_everything: bool):
    """A tiny SD safety checker (CLIP vision tower) and its image processor.

    Its concept thresholds decide alone: -10 flags every picture, +10 none.
    """
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    vision = dict(hidden_size=16, intermediate_size=32, num_attention_heads=2,
                  num_hidden_layers=1, image_size=32, patch_size=8)  # fmt: skip
    text = dict(hidden_size=16, intermediate_size=32, num_attention_heads=2, num_hidden_layers=1)
    checker = StableDiffusionSafetyChecker(
        CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    )
    with torch.no_grad():
        threshold = -10.0 if flag_everything else 10.0
        checker.concept_embeds_weights.fill_(threshold)
        checker.special_care_embeds_weights.fill_(threshold)
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size=32)
    return checker, processor


def build_folder(path: Path, in_channels: int = 4, flagging_checker: bool = False) -> Path:
    """A diffusers folder of a tiny SD (16x16 pictures, latents 8x8), safetensors weights.

    flagging_checker adds a safety checker that flags (blacks out) every picture.
    """
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline

    cls = StableDiffusionInpaintPipeline if in_channels == 9 else StableDiffusionPipeline
    checker, processor = safety_checker(True) if flagging_checker else (None, None)
    pipe = cls(
        **components(in_channels), safety_checker=checker, feature_extractor=processor,
        requires_safety_checker=flagging_checker,
    )  # fmt: skip
    pipe.save_pretrained(path, safe_serialization=True)
    published_text_encoder_layout(path / "text_encoder" / "model.safetensors")
    published_tokenizer_layout(path / "tokenizer", pipe.tokenizer)
    return path


def published_tokenizer_layout(folder: Path, tok) -> None:
    """The tokenizer as SD 1.x folders hold it: vocab.json and merges.txt, no tokenizer.json."""
    import json
    import shutil

    shutil.rmtree(folder)
    folder.mkdir()
    (folder / "vocab.json").write_text(json.dumps(tok.get_vocab()))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in MERGES))
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
               "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}  # fmt: skip
    config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True}
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, **special}))
    (folder / "special_tokens_map.json").write_text(json.dumps(special))


def published_text_encoder_layout(weights: Path) -> None:
    """Rewrite CLIP text-encoder weights the way published SD folders hold them.

    transformers >= 5.6 saves CLIPTextModel flat (`embeddings.*`); the SD 1.x folders people
    have were written by transformers 4 (`text_model.embeddings.*`, plus the position_ids
    buffer), and loading them must not leave any weight at its random initialisation.
    """
    from safetensors.torch import load_file, save_file

    tensors = load_file(weights)
    old = {k if k.startswith("text_model.") else "text_model." + k: v for k, v in tensors.items()}
    n = old["text_model.embeddings.position_embedding.weight"].shape[0]
    old["text_model.embeddings.position_ids"] = torch.arange(n)[None]
    save_file(old, weights)


# ----------------------------------------------------------------------------- LDM layout

_RESNET = {  # diffusers resnet name -> LDM ResBlock name
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _unet_key(key: str, up_has_attention: list[bool]) -> str:
    """diffusers UNet2DConditionModel name -> LDM openaimodel name (SD 1.x layout)."""
    top = {
        "time_embedding.linear_1": "time_embed.0",
        "time_embedding.linear_2": "time_embed.2",
        "conv_in": "input_blocks.0.0",
        "conv_norm_out": "out.0",
        "conv_out": "out.2",
    }
    for old, new in top.items():
        if key.startswith(old + "."):
            return new + key[len(old) :]
    parts = key.split(".")
    if parts[0] == "mid_block":
        index = {"resnets.0": 0, "attentions.0": 1, "resnets.1": 2}[".".join(parts[1:3])]
        rest = parts[3:]
        if parts[1] == "resnets":
            rest = _RESNET.get(rest[0], rest[0]).split(".") + rest[1:]
        return ".".join(["middle_block", str(index), *rest])
    block, kind = int(parts[1]), parts[2]
    if kind in ("downsamplers", "upsamplers"):
        rest = parts[5:]  # downsamplers.0.conv.<param>
        if kind == "downsamplers":
            return ".".join(["input_blocks", str((block + 1) * (LAYERS + 1)), "0", "op", *rest])
        slot = 2 if up_has_attention[block] else 1
        i = block * (LAYERS + 1) + LAYERS
        return ".".join(["output_blocks", str(i), str(slot), "conv", *rest])
    layer, rest = int(parts[3]), parts[4:]
    if kind == "resnets":
        rest = _RESNET.get(rest[0], rest[0]).split(".") + rest[1:]
    slot = "0" if kind == "resnets" else "1"
    if parts[0] == "down_blocks":
        return ".".join(["input_blocks", str(1 + block * (LAYERS + 1) + layer), slot, *rest])
    return ".".join(["output_blocks", str(block * (LAYERS + 1) + layer), slot, *rest])


def _vae_key(key: str, n_blocks: int) -> str:
    """diffusers AutoencoderKL name -> LDM first_stage_model name."""
    key = key.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
    parts = key.split(".")
    if len(parts) < 3 or parts[1] not in ("down_blocks", "up_blocks", "mid_block"):
        return key
    side, group = parts[0], parts[1]
    if group == "mid_block":
        if parts[2] == "resnets":
            return ".".join([side, "mid", f"block_{int(parts[3]) + 1}", *parts[4:]])
        rest = ".".join(parts[4:])
        for old, new in _VAE_ATTN.items():
            if rest.startswith(old + "."):
                rest = new + rest[len(old) :]
        return ".".join([side, "mid", "attn_1", rest])
    block = int(parts[2])
    name = "down" if group == "down_blocks" else "up"
    if group == "up_blocks":
        block = n_blocks - 1 - block  # LDM counts decoder blocks from the lowest resolution
    if parts[3] == "resnets":
        return ".".join([side, name, str(block), "block", *parts[4:]])
    sampler = "downsample" if group == "down_blocks" else "upsample"
    return ".".join([side, name, str(block), sampler, *parts[5:]])  # *samplers.0.conv.<param>


def ldm_state_dict(unet, vae, text_encoder) -> dict[str, torch.Tensor]:
    """The three models' weights under the names of an original SD 1.x checkpoint."""
    up_attention = ["CrossAttn" in t for t in unet.config.up_block_types]
    out = {}
    for k, v in unet.state_dict().items():
        out["model.diffusion_model." + _unet_key(k, up_attention)] = v
    n = len(vae.config.block_out_channels)
    for k, v in vae.state_dict().items():
        if ".mid_block.attentions." in k and v.ndim == 2:
            v = v[:, :, None, None]  # LDM's VAE attention uses 1x1 convolutions
        out["first_stage_model." + _vae_key(k, n)] = v
    for k, v in text_encoder.state_dict().items():
        k = k if k.startswith("text_model.") else "text_model." + k  # flat in transformers >= 5.6
        out["cond_stage_model.transformer." + k] = v
    return {k: v.contiguous() for k, v in out.items()}
